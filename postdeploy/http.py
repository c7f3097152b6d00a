"""HTTP access to a target: one configured httpx client, and the exchange recorder.

Every request a check makes goes through :func:`new_client`, so every request has the target's
timeouts, trusts the right CA, and is recorded (redacted, see ``postdeploy.redact``) for the
report. Nothing else in postdeploy records requests.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from postdeploy.redact import redact_body, redact_headers, redact_url

if TYPE_CHECKING:
    from postdeploy.config import Target

#: Largest body kept per recorded request or response, in characters.
MAX_RECORDED_BODY = 4000
#: Exchanges kept per test; the oldest are dropped first.
MAX_RECORDED_EXCHANGES = 50
USER_AGENT = "postdeploy/0.1 (+post-deployment validation)"


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


def new_client(target: Target, recorder: Recorder | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx client for ``target``: its base URL, timeouts, CA, and the recorder's hooks."""
    options: dict[str, Any] = {
        "base_url": target.url,
        "timeout": timeout(target),
        "verify": ssl_context(target),
        "follow_redirects": False,
        "headers": {"User-Agent": USER_AGENT},
    }
    if recorder is not None:
        options["event_hooks"] = recorder.hooks()
    options.update(kwargs)
    return httpx.Client(**options)
