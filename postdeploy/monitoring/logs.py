"""Log collection: are the deployment's logs being collected? Read back where they are kept.

Two sources, chosen per target:

* a Grafana Loki, when ``monitoring.loki_url`` is set: ``GET /loki/api/v1/query_range`` with
  the target's stream selector (``monitoring.loki_query``) and a line filter for the needle;
* otherwise the target's platform driver: ``driver.logs(limit)`` (the local platform reads the
  serving release's log file, the one ``postdeploy local logs`` prints).

:func:`wait_for_line` polls a source until a line holds the needle (a unique request id) or
the time runs out; "no log lines at all" and "lines, but not this one" are failures with
messages of their own (:class:`LogsMissing`, an assertion failure: the target's). A source
that cannot be read - Loki unreachable, timing out, refusing the token, a 5xx or an answer
that is not streams (:class:`LogCollectionError`), a driver that cannot read the platform's
logs (:class:`LogSourceError`) - is a :class:`~postdeploy.gate.BackendError`: the check is
then broken, never failed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import httpx

from postdeploy.gate import (
    TIMEOUT,
    UNPARSEABLE,
    UNREACHABLE,
    BackendError,
    http_failure,
    transport_failure,
)

if TYPE_CHECKING:
    from postdeploy.config import Target

POLL_INTERVAL_S = 0.2
#: How far back a Loki query looks, in seconds before the request was sent.
LOKI_LOOKBACK_S = 300
LOKI_LIMIT = 1000
QUOTE_CHARS = 300
NANOSECONDS = 1_000_000_000


#: The system named when Loki fails (the verdict's ``backend``).
LOKI = "Loki"


class LogCollectionError(BackendError):
    """Loki could not be read (``how``: unreachable, timeout, refused, server error,
    unparseable): the harness's side, so the check is *broken*."""

    def __init__(self, message: str, how: str) -> None:
        super().__init__(message, system=LOKI, how=how)


class LogSourceError(BackendError):
    """The platform could not be asked for its logs (refused, unreachable, not configured): the
    harness's side, so the check is *broken* (the gate inconclusive), never failed."""

    def __init__(self, message: str, platform: str, how: str = UNREACHABLE) -> None:
        super().__init__(message, system=f"{platform} logs API", how=how)


class LogsMissing(AssertionError):
    """The logs were read, and the deployment's line is not there: the check fails."""


class LogSource(Protocol):
    """Somewhere the deployment's log lines can be read back."""

    def describe(self) -> str: ...

    def lines(self, needle: str, since: float) -> Sequence[str]:
        """Recent lines (a source may return only those holding ``needle``)."""


@dataclass
class DriverLogs:
    """The platform driver's ``logs()``."""

    target: Target
    limit: int

    def describe(self) -> str:
        return f"the {self.target.platform} platform driver's logs of target {self.target.name!r}"

    def lines(self, needle: str, since: float) -> Sequence[str]:
        from postdeploy.rollback import DriverError, driver_for

        try:
            return list(driver_for(self.target).logs(self.limit))
        except DriverError as exc:
            raise LogSourceError(
                f"reading {self.describe()} failed: {exc}", self.target.platform
            ) from None


@dataclass
class LokiLogs:
    """A Grafana Loki, through ``GET /loki/api/v1/query_range``."""

    url: str
    selector: str
    timeout_s: float
    token: str | None = field(default=None, repr=False)
    tenant: str = ""
    _client: httpx.Client | None = field(default=None, repr=False)

    def client(self) -> httpx.Client:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            if self.tenant:
                headers["X-Scope-OrgID"] = self.tenant
            self._client = httpx.Client(
                base_url=self.url.rstrip("/"), headers=headers, timeout=self.timeout_s
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def describe(self) -> str:
        return f"Grafana Loki at {self.url} (selector {self.selector})"

    def query(self, needle: str) -> str:
        return f"{self.selector} |= {json.dumps(needle)}"

    def lines(self, needle: str, since: float) -> Sequence[str]:
        path = "/loki/api/v1/query_range"
        query = self.query(needle)
        params = {
            "query": query,
            "start": str(int((since - LOKI_LOOKBACK_S) * NANOSECONDS)),
            "end": str(int((time.time() + 1) * NANOSECONDS)),
            "limit": str(LOKI_LIMIT),
            "direction": "backward",
        }
        where = f"{self.describe()}: GET {path} (query {query!r})"
        try:
            response = self.client().get(path, params=params)
        except httpx.TimeoutException:
            raise LogCollectionError(
                f"{where} did not answer within {self.timeout_s:g} s", TIMEOUT
            ) from None
        except httpx.TransportError as exc:
            raise LogCollectionError(
                f"{where}: Loki is unreachable ({type(exc).__name__}: {exc}); check "
                "monitoring.loki_url",
                transport_failure(exc),
            ) from None
        if response.status_code != 200:
            raise LogCollectionError(
                f"{where} answered HTTP {response.status_code}: {response.text[:QUOTE_CHARS]}",
                http_failure(response.status_code),
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or not isinstance(data, dict)
            or body.get("status") != "success"
            or data.get("resultType") != "streams"
        ):
            raise LogCollectionError(
                f"{where} did not answer streams: {str(body or response.text)[:QUOTE_CHARS]}",
                UNPARSEABLE,
            )
        return [
            str(value[1])
            for stream in data.get("result") or []
            for value in stream.get("values") or []
            if isinstance(value, list) and len(value) == 2
        ]


def log_source(target: Target) -> LogSource:
    settings = target.monitoring
    if settings.loki_url:
        token_env = settings.loki_token_env
        return LokiLogs(
            settings.loki_url,
            settings.loki_query,
            settings.query_timeout_s,
            token=os.environ.get(token_env) if token_env else None,
            tenant=settings.loki_tenant,
        )
    return DriverLogs(target, int(settings.log_lines))


def wait_for_line(source: LogSource, needle: str, timeout_s: float, since: float) -> str:
    """The first line holding ``needle``, polled until ``timeout_s``; a failure otherwise.

    ``since`` is the ``time.time()`` at which the logged request was sent.
    """
    deadline = time.monotonic() + timeout_s
    seen = 0
    while True:
        lines = source.lines(needle, since)
        seen = max(seen, len(lines))
        for line in reversed(lines):
            if needle in line:
                return line
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    if not seen and not isinstance(source, LokiLogs):
        raise LogsMissing(
            f"no data: {source.describe()} returned no log lines at all within {timeout_s:g} s; "
            "logs are not being collected"
        )
    raise LogsMissing(
        f"{needle!r} did not appear in {source.describe()} within {timeout_s:g} s "
        f"({seen} lines read at most): the request's log line was not collected"
    )
