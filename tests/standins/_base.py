"""What every HTTP stand-in shares: routing, bearer auth, injected failures, a request log.

A stand-in is an ``httpx.MockTransport`` handler that keeps state - the platform's releases and
which one serves - so that a rollback through it really changes what serves. Tests inject the
platform's error answers with :meth:`StandIn.fail`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Handler = Callable[..., httpx.Response]


@dataclass
class Fault:
    """An answer to give instead of the real one: a status code, "timeout" or "connect"."""

    answer: int | str
    method: str | None = None
    path_contains: str | None = None
    times: int = 1
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: only requests whose body contains this (a GraphQL operation, say)
    body_contains: str | None = None

    def matches(self, request: httpx.Request) -> bool:
        if self.times <= 0:
            return False
        if self.method and request.method != self.method:
            return False
        if self.body_contains and self.body_contains not in request.content.decode(
            errors="replace"
        ):
            return False
        return not self.path_contains or self.path_contains in request.url.path


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in saw it (the Authorization header is not kept)."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    authorized: bool


class StandIn:
    """Base of the platform stand-ins; subclasses fill ``routes`` and ``error``."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        #: (method, compiled path pattern, handler(request, match, body))
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    # -- test controls ------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def fail(
        self,
        answer: int | str,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        body_contains: str | None = None,
    ) -> None:
        self.faults.append(
            Fault(answer, method, path_contains, times, body, headers or {}, body_contains)
        )

    def calls(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.method == method]

    # -- what subclasses provide ------------------------------------------------------------

    def error(self, status: int, message: str) -> httpx.Response:
        """The platform's error body for ``status``."""
        return httpx.Response(status, json={"message": message})

    def unauthorized(self) -> httpx.Response:
        return self.error(401, "unauthorized")

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append((method, re.compile(pattern + "$"), handler))
            return handler

        return register

    # -- the handler ------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        body: Any = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                body = request.content.decode(errors="replace")
        authorized = request.headers.get("Authorization") == f"Bearer {self._token}"
        self.seen.append(
            Seen(request.method, request.url.path, dict(request.url.params), body, authorized)
        )
        for fault in self.faults:
            if fault.matches(request):
                fault.times -= 1
                if fault.answer == "timeout":
                    raise httpx.ReadTimeout("stand-in: no answer", request=request)
                if fault.answer == "connect":
                    raise httpx.ConnectError("stand-in: connection refused", request=request)
                assert isinstance(fault.answer, int)
                if fault.body is not None:
                    return httpx.Response(fault.answer, json=fault.body, headers=fault.headers)
                response = self.error(fault.answer, f"stand-in {fault.answer}")
                response.headers.update(fault.headers)
                return response
        if not authorized:
            return self.unauthorized()
        for method, pattern, handler in self.routes:
            match = pattern.match(request.url.path)
            if match and method == request.method:
                return handler(request, match, body)
        if any(pattern.match(request.url.path) for _, pattern, _ in self.routes):
            return self.error(405, f"{request.method} is not allowed here")
        return self.error(404, f"no route {request.url.path}")


class FakeClock:
    """A monotonic clock that only moves when slept on; ``on_sleep`` runs at each sleep."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.now = 0.0
        self.slept = 0
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)
        self.slept += 1
        if self.on_sleep:
            self.on_sleep()
