"""HTTP access to a target: one configured httpx client, and the exchange recorder.

Every request a check makes goes through :func:`new_client`, so every request has the target's
timeouts, trusts the right CA, and is recorded (redacted, see ``postdeploy.redact``) for the
report. Nothing else in postdeploy records requests.
"""

from __future__ import annotations

import email.utils
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from postdeploy.contract import PATHS
from postdeploy.gate import BackendError
from postdeploy.redact import redact_body, redact_headers, redact_url

if TYPE_CHECKING:
    from postdeploy.budget import WindowBudget
    from postdeploy.config import Target

#: Largest body kept per recorded request or response, in characters.
MAX_RECORDED_BODY = 4000
#: Exchanges kept per test; the oldest are dropped first.
MAX_RECORDED_EXCHANGES = 50
USER_AGENT = "postdeploy/0.1 (+post-deployment validation)"
RATE_LIMITED_STATUS = 429
CLIENT_ERROR = 400
SERVER_ERROR = 500
#: Client errors of a registration that did spend the limit: a duplicate, a 429.
SPENT_STATUSES = frozenset({409, RATE_LIMITED_STATUS})
#: How a check broken by the target's rate limit names it in the verdict.
RATE_LIMIT_SYSTEM = "the target's rate limit"
RATE_LIMITED_HOW = "rate-limited the harness"


@dataclass
class Exchange:
    """One request and its response, already redacted."""

    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: str
    status: int | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: str = ""
    elapsed_ms: float | None = None

    def render(self) -> str:
        lines = [f"> {self.method} {self.url}"]
        lines += [f"> {k}: {v}" for k, v in self.request_headers]
        if self.request_body:
            lines += [">", self.request_body]
        if self.status is None:
            lines.append("< (no response)")
        else:
            elapsed = f" ({self.elapsed_ms:.0f} ms)" if self.elapsed_ms is not None else ""
            lines.append(f"< HTTP {self.status}{elapsed}")
            lines += [f"< {k}: {v}" for k, v in self.response_headers]
            if self.response_body:
                lines += ["<", self.response_body]
        return "\n".join(lines)


class Recorder:
    """Collects redacted exchanges for one test."""

    def __init__(self, limit: int = MAX_RECORDED_EXCHANGES) -> None:
        self.exchanges: list[Exchange] = []
        self._limit = limit

    def _on_request(self, request: httpx.Request) -> None:
        content_type = request.headers.get("content-type", "")
        try:
            body = _text(request.content)
        except httpx.RequestNotRead:  # a streamed upload: not recorded
            body = "(streamed body)"
        exchange = Exchange(
            method=request.method,
            url=redact_url(str(request.url)),
            request_headers=redact_headers(request.headers.multi_items()),
            request_body=redact_body(body, content_type)[:MAX_RECORDED_BODY],
        )
        request.extensions["postdeploy_exchange"] = exchange
        self.exchanges.append(exchange)
        del self.exchanges[: -self._limit]

    def _on_response(self, response: httpx.Response) -> None:
        exchange = response.request.extensions.get("postdeploy_exchange")
        if exchange is None:
            return
        response.read()
        exchange.status = response.status_code
        exchange.response_headers = redact_headers(response.headers.multi_items())
        content_type = response.headers.get("content-type", "")
        exchange.response_body = redact_body(_text(response.content), content_type)[
            :MAX_RECORDED_BODY
        ]
        exchange.elapsed_ms = (
            response.elapsed.total_seconds() * 1000 if _has_elapsed(response) else None
        )

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self._on_request], "response": [self._on_response]}

    def render(self) -> str:
        return "\n\n".join(exchange.render() for exchange in self.exchanges)


#: On a test item: the Recorder of its HTTP exchanges (see ``fixtures.recorder``).
RECORDER_KEY = pytest.StashKey[Recorder]()


def _has_elapsed(response: httpx.Response) -> bool:
    try:
        response.elapsed  # noqa: B018 - only set once the response is closed
    except RuntimeError:
        return False
    return True


def _text(content: bytes) -> str:
    return content[: MAX_RECORDED_BODY * 2].decode("utf-8", errors="replace")


def ssl_context(target: Target) -> ssl.SSLContext | bool:
    """What httpx should verify against for ``target``: its own CA file, else the system store."""
    if target.ca_file:
        return ssl.create_default_context(cafile=target.ca_file)
    return True


def timeout(target: Target) -> httpx.Timeout:
    return httpx.Timeout(target.timeout_s, connect=target.connect_timeout_s)


class TargetRateLimited(BackendError):
    """The target answered 429 to the harness's own traffic, and still did after one bounded
    wait for its Retry-After: the run spent more than the target's limits allow. The
    harness's side (its traffic plan), so the check is broken - never failed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, system=RATE_LIMIT_SYSTEM, how=RATE_LIMITED_HOW)


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (delay-seconds or an HTTP date); None when unusable."""
    if not value:
        return None
    if value.strip().isdecimal():
        return float(value.strip())
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class BudgetTransport(httpx.BaseTransport):
    """Sends through ``inner``; a 429 is waited out once (its Retry-After, at most
    ``max_wait_s``) and the request sent again; a second 429, or a longer wait, raises
    :class:`TargetRateLimited`. Only the rate-limit check, which wants the 429, goes without."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        max_wait_s: float,
        registrations: WindowBudget | None = None,
        logins: WindowBudget | None = None,
    ) -> None:
        self._inner = inner
        self.max_wait_s = max_wait_s
        self.registrations = registrations
        self.logins = logins

    def _paced(self, request: httpx.Request) -> tuple[WindowBudget, str] | None:
        """The window ``request`` spends, and its key; None for requests that spend none."""
        if request.method != "POST":
            return None
        if request.url.path == PATHS.register and self.registrations is not None:
            from postdeploy.budget import WHOLE_CLIENT

            return self.registrations, WHOLE_CLIENT
        if request.url.path == PATHS.login and self.logins is not None:
            email = _email_of(request)
            if email:  # no address, no account to count against
                from postdeploy.budget import account_key

                return self.logins, account_key(email)
        return None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        paced = self._paced(request)
        slot = paced[0].acquire(paced[1]) if paced is not None else None
        response = self._inner.handle_request(request)
        if paced is not None and slot is not None and _refused_before_counting(response):
            paced[0].release(slot, paced[1])
        if response.status_code != RATE_LIMITED_STATUS:
            return response
        header = response.headers.get("retry-after")
        wait = retry_after_s(header)
        response.close()
        if wait is not None and wait <= self.max_wait_s:
            time.sleep(wait)
            response = self._inner.handle_request(request)
            if response.status_code != RATE_LIMITED_STATUS:
                return response
            response.close()
        raise TargetRateLimited(
            f"{request.method} {request.url.path}: the target rate-limited the harness (HTTP 429, "
            f"Retry-After {header or 'none'}; waited at most {self.max_wait_s:g} s, "
            "limits.retry_after_max_s): the run's synthetic traffic exceeded the target's "
            "limits - declare them in [targets.NAME.limits]; the target was not judged"
        )

    def close(self) -> None:
        self._inner.close()


def _refused_before_counting(response: httpx.Response) -> bool:
    """A registration refused as invalid (400, 413, 415, 422, ...) never reached the limiter."""
    status = response.status_code
    return CLIENT_ERROR <= status < SERVER_ERROR and status not in SPENT_STATUSES


def _email_of(request: httpx.Request) -> str:
    """The ``email`` of a JSON login body ("" when there is none: a hostile or malformed one)."""
    import json

    try:
        body = json.loads(request.content or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # hostile bodies come this way
        return ""
    email = body.get("email") if isinstance(body, dict) else None
    return email if isinstance(email, str) else ""


def registration_budget(target: Target) -> WindowBudget | None:
    """``target``'s window of the harness's registrations (None: it declares no limits)."""
    if "limits" not in target.sections:
        return None
    from postdeploy import paths
    from postdeploy.budget import WindowBudget

    limits = target.limits
    return WindowBudget.registrations(
        paths.state_dir(), target.name, int(limits.registrations_per_window), limits.window_s
    )


def login_budget(target: Target) -> WindowBudget | None:
    """``target``'s windows of the harness's logins, one per account (None: no limits)."""
    if "limits" not in target.sections:
        return None
    from postdeploy import paths
    from postdeploy.budget import WindowBudget

    limits = target.limits
    return WindowBudget.logins(
        paths.state_dir(), target.name, int(limits.logins_per_window), limits.window_s
    )


def budget_transport(target: Target, inner: httpx.BaseTransport) -> BudgetTransport:
    """The transport that keeps ``target``'s registrations and logins within its limits."""
    registrations = registration_budget(target)
    if registrations is None:
        return BudgetTransport(inner, 0.0)
    return BudgetTransport(
        inner,
        float(target.limits.retry_after_max_s),
        registrations,
        login_budget(target),
    )


def new_client(
    target: Target,
    recorder: Recorder | None = None,
    *,
    expect_rate_limit: bool = False,
    **kwargs: Any,
) -> httpx.Client:
    """An httpx client for ``target``: its base URL, timeouts, CA, and the recorder's hooks.

    A 429 is waited out once within ``limits.retry_after_max_s`` and then breaks the check
    (:class:`BudgetTransport`), unless ``expect_rate_limit`` (the rate-limit check)."""
    options: dict[str, Any] = {
        "base_url": target.url,
        "timeout": timeout(target),
        "verify": ssl_context(target),
        "follow_redirects": False,
        "headers": {"User-Agent": USER_AGENT},
    }
    if not expect_rate_limit and "transport" not in kwargs:
        inner = httpx.HTTPTransport(verify=options["verify"])
        options["transport"] = budget_transport(target, inner)
    if recorder is not None:
        options["event_hooks"] = recorder.hooks()
    options.update(kwargs)
    return httpx.Client(**options)
