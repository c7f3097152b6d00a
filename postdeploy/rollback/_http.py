"""What the REST and GraphQL drivers share: bearer auth, error answers, polling.

Every platform answer that is not a success becomes a :class:`DriverError` whose message says
what was refused and what to do, and never carries the token: the token is read from the
environment at the moment a request is sent (:class:`EnvBearerAuth`), is never stored on a
driver, and any platform text quoted in a message is scrubbed first.

Errors worth waiting out (429, 5xx, timeouts, refused connections) are
:class:`TransientDriverError`; the ``wait_until_serving`` loops keep polling through them and
give up only at their deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from postdeploy.redact import public_host, redact_text
from postdeploy.rollback.base import DriverError, DriverUnavailable, Instance, LifecycleDefaults

if TYPE_CHECKING:
    from postdeploy.config import Target

log = logging.getLogger("postdeploy.rollback")

USER_AGENT = "postdeploy-rollback"
#: Tries of a request that changes nothing (a read) when the platform answers 429 or 5xx,
#: times out or cannot be reached; a request that changes something is sent once.
READ_ATTEMPTS = 2
#: Longest piece of a platform's own error text quoted in a message.
MAX_QUOTED_CHARS = 300
#: Used when a target carries no ``[rollback]`` section (a Target built in code).
DEFAULT_WAIT_TIMEOUT_S = 300.0
DEFAULT_POLL_INTERVAL_S = 1.0

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class TransientDriverError(DriverError):
    """A refusal that may pass by itself: rate limit, platform error, timeout, no connection."""


def rollback_setting(target: Target, key: str, default: float) -> float:
    """``target.rollback.<key>``, or ``default`` when the target has no rollback section."""
    section = target.sections.get("rollback") if target.sections else None
    if section is None or key not in section:
        return default
    return float(section[key])


def quote(text: str, secrets: tuple[str, ...] = ()) -> str:
    """A platform's own words, shortened and scrubbed of anything secret-looking."""
    text = " ".join(str(text).split())
    if len(text) > MAX_QUOTED_CHARS:
        text = text[: MAX_QUOTED_CHARS - 3] + "..."
    return redact_text(text, secrets)


def platform_message(response: httpx.Response) -> str:
    """The human part of an error body: ``message``, ``error.message``, ``errors[0].message``."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, Mapping):
        for key in ("message", "Message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
        error = body.get("error") or body.get("Error")
        if isinstance(error, Mapping):
            for key in ("message", "Message"):
                if isinstance(error.get(key), str):
                    return str(error[key])
        if isinstance(error, str):
            return error
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            return str(errors[0].get("message", ""))
    return ""


def status_error(
    response: httpx.Response,
    *,
    what: str,
    token_env: str,
    not_found_hint: str,
    secrets: tuple[str, ...] = (),
) -> DriverError:
    """The :class:`DriverError` for a non-success answer to ``what``."""
    code = response.status_code
    said = quote(platform_message(response), secrets)
    said = f' (the platform said: "{said}")' if said else ""
    if code == httpx.codes.UNAUTHORIZED:
        return DriverError(
            f"{what} was refused with 401 Unauthorized{said}: the token in ${token_env} is "
            f"missing, invalid or expired; put a valid API token in ${token_env}"
        )
    if code == httpx.codes.FORBIDDEN:
        return DriverError(
            f"{what} was refused with 403 Forbidden{said}: the token in ${token_env} is valid "
            "but may not do this; give it access to this service (or use a token that has it)"
        )
    if code == httpx.codes.NOT_FOUND:
        return DriverError(f"{what} answered 404 Not Found{said}: {not_found_hint}")
    if code == httpx.codes.CONFLICT:
        return DriverError(
            f"{what} answered 409 Conflict{said}: another deploy or operation is in progress "
            "on this service; wait for it to finish, then roll back again"
        )
    if code == httpx.codes.TOO_MANY_REQUESTS:
        retry = response.headers.get("Retry-After")
        after = f" (Retry-After: {quote(retry)} s)" if retry else ""
        return TransientDriverError(
            f"{what} was rate limited with 429 Too Many Requests{after}; retry later"
        )
    if code >= httpx.codes.INTERNAL_SERVER_ERROR:
        return TransientDriverError(
            f"{what} failed with {code} {response.reason_phrase}{said}: the platform had an "
            "error; retry later and check the platform's status page"
        )
    return DriverError(f"{what} was refused with {code} {response.reason_phrase}{said}")


def transport_error(
    exc: httpx.TransportError, *, what: str, host: str, timeout_s: float
) -> DriverError:
    """The :class:`DriverError` for a request that got no answer."""
    if isinstance(exc, httpx.TimeoutException):
        return TransientDriverError(
            f"{what}: no answer from {host} within {timeout_s:g} s ({type(exc).__name__}); "
            "the platform may be slow or down; retry later or raise the target's timeout_s"
        )
    return TransientDriverError(
        f"{what}: could not reach {host} ({type(exc).__name__}); check the network and the "
        "target's api_url"
    )


class EnvBearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` with the token read from the environment per request."""

    def __init__(self, read_token: Callable[[], str | None], env_name: str) -> None:
        self._read_token = read_token
        self.env_name = env_name

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._read_token()
        if not token:
            raise DriverUnavailable(f"${self.env_name} is not set; put the API token in it")
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def __repr__(self) -> str:
        return f"EnvBearerAuth(from ${self.env_name})"


def wait_for(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    interval_s: float,
    clock: Clock,
    sleep: Sleep,
) -> bool:
    """Call ``check`` until it is true (True) or ``timeout_s`` passes (False).

    :class:`TransientDriverError` from ``check`` counts as "not yet"; any other
    :class:`DriverError` ends the wait by propagating.
    """
    deadline = clock() + timeout_s
    while True:
        try:
            if check():
                return True
        except TransientDriverError as exc:
            log.info("still waiting: %s", exc)
        if clock() >= deadline:
            return False
        sleep(max(0.0, min(interval_s, deadline - clock())))


class RestDriver(LifecycleDefaults):
    """Base of the drivers that speak HTTP with a bearer token to ``settings["api_url"]``.

    Subclasses set ``platform``, override :meth:`not_found_hint` and build on :meth:`_request`.
    ``transport`` (an ``httpx.BaseTransport``) lets tests put a stand-in of the platform's API
    under the driver; ``clock`` and ``sleep`` let them wait without waiting.
    """

    platform = ""

    def __init__(
        self,
        target: Target,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.target = target
        self.clock = clock
        self.sleep = sleep
        self.api_url = str(target.settings.get("api_url", "")).rstrip("/")
        self.token_env = str(target.settings.get("token_env", ""))
        self.poll_interval_s = rollback_setting(target, "poll_interval_s", DEFAULT_POLL_INTERVAL_S)
        self._transport = transport
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target.name!r}, api_url={self.api_url!r})"

    # -- protocol parts every REST driver shares -------------------------------------------

    def preflight(self) -> None:
        """Raise :class:`DriverUnavailable` when the token or the API URL is missing."""
        where = f"target {self.target.name!r} ({self.platform})"
        if not self.token_env:
            raise DriverUnavailable(f"{where}: token_env is empty; name the env var of the token")
        if not self.target.secret("token_env"):
            raise DriverUnavailable(
                f"{where}: ${self.token_env} is not set; put the platform's API token in it "
                "(a CI secret) to let postdeploy roll this target back"
            )
        scheme = urlsplit(self.api_url).scheme
        if scheme not in ("http", "https"):
            raise DriverUnavailable(f"{where}: api_url {self.api_url!r} is not an http(s) URL")

    def logs(self, limit: int = 200) -> list[str]:
        """Recent log lines; this driver does not read the platform's logs."""
        return []

    def instances(self) -> list[Instance]:
        """This platform offers no way to send a request to one instance: none listed."""
        return []

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- helpers ----------------------------------------------------------------------------

    def not_found_hint(self) -> str:
        """What to check when the platform answers 404."""
        return "check the platform identifiers of this target in targets.toml"

    @property
    def host(self) -> str:
        return public_host(self.api_url)

    def _secrets(self) -> tuple[str, ...]:
        token = self.target.secret("token_env")
        return (token,) if token else ()

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.api_url,
                auth=EnvBearerAuth(lambda: self.target.secret("token_env"), self.token_env),
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=httpx.Timeout(self.target.timeout_s, connect=self.target.connect_timeout_s),
                follow_redirects=False,
                transport=self._transport,
            )
        return self._client

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send a request; any non-2xx answer or transport failure is a DriverError.

        A read (``GET``, or ``idempotent=True``) is tried again once after a
        :class:`TransientDriverError`, a poll interval later.
        """
        attempts = READ_ATTEMPTS if (method == "GET" if idempotent is None else idempotent) else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._send_once(method, url, what=what, json=json, params=params)
            except TransientDriverError as exc:
                if attempt == attempts:
                    raise
                log.info("trying again: %s", exc)
                self.sleep(self.poll_interval_s)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json: Any,
        params: Mapping[str, Any] | None,
    ) -> httpx.Response:
        what = f"{self.platform}: {what} (target {self.target.name!r})"
        try:
            response = self.client().request(method, url, json=json, params=params)
        except DriverUnavailable as exc:
            raise DriverUnavailable(f"{what}: {exc}") from None
        except httpx.TransportError as exc:
            raise transport_error(
                exc, what=what, host=self.host, timeout_s=self.target.timeout_s
            ) from None
        if response.is_error:
            raise status_error(
                response, what=what, token_env=self.token_env,
                not_found_hint=self.not_found_hint(), secrets=self._secrets(),
            )  # fmt: skip
        return response

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """:meth:`_send`, then the decoded JSON body (None when there is none)."""
        response = self._send(
            method, path, what=what, json=json, params=params, idempotent=idempotent
        )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise DriverError(
                f"{self.platform}: {what} (target {self.target.name!r}) answered "
                f"{response.status_code} with a body that is not JSON; is api_url "
                f"{self.api_url!r} the platform's API?"
            ) from None

    def _wait(self, check: Callable[[], bool], timeout_s: float) -> bool:
        return wait_for(
            check,
            timeout_s=timeout_s,
            interval_s=self.poll_interval_s,
            clock=self.clock,
            sleep=self.sleep,
        )

    def _bearer_note(self) -> str:
        return f"(Authorization: Bearer ${self.token_env})"
