"""HTTP methods: ``TRACE``/``TRACK`` refused everywhere, unexpected methods answered 405.

``TRACE`` echoes the request, cookies and credentials included (cross-site tracing), and has
no use on a production site: it must be refused (any answer but 2xx). A route asked for a
method it does not implement must say so: 405 with an ``Allow`` header (RFC 9110 §15.5.6) that
does not list that method; a 2xx means the route ignores the method, a 5xx that it breaks.

Safe by construction: besides TRACE/TRACK only ``PATCH`` is sent, which no route of the
contract implements, anonymously and with an empty body (a partial update that changes
nothing even where it is wrongly accepted).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

import httpx

TRACE_METHODS = ("TRACE", "TRACK")
#: The method sent to API routes that do not implement it.
UNEXPECTED_METHOD = "PATCH"
ECHO_HEADER = "X-Postdeploy-Trace"


def trace_problems(client: httpx.Client, paths: Iterable[str]) -> list[str]:
    """TRACE/TRACK on each path must not succeed (and must never echo the request)."""
    problems = []
    for path in paths:
        for method in TRACE_METHODS:
            marker = secrets.token_hex(8)
            response = client.request(method, path, headers={ECHO_HEADER: marker})
            if response.is_success:
                echoed = " and echoes the request's headers" if marker in response.text else ""
                problems.append(
                    f"{method} {response.url} answered HTTP {response.status_code}: {method} "
                    f"is enabled{echoed} (cross-site tracing)"
                )
    return problems


def unexpected_method_problems(
    client: httpx.Client, routes: Iterable[tuple[str, frozenset[str]]]
) -> list[str]:
    """Each route asked for a method it does not implement answers 405 with a true Allow."""
    problems = []
    for path, implemented in routes:
        for method in [UNEXPECTED_METHOD] if UNEXPECTED_METHOD not in implemented else []:
            response = client.request(method, path)
            where = f"{method} {response.url} answered HTTP {response.status_code}"
            if response.status_code != httpx.codes.METHOD_NOT_ALLOWED:
                problems.append(f"{where}, expected 405 Method Not Allowed: {_why(response)}")
                continue
            allow = {m.strip().upper() for m in response.headers.get("allow", "").split(",")}
            allow.discard("")
            if not allow:
                problems.append(f"{where} without the Allow header a 405 must carry")
            elif method in allow:
                problems.append(f"{where} but its Allow header lists {method}: {sorted(allow)}")
    return problems


def _why(response: httpx.Response) -> str:
    if response.is_success:
        return "the route ignores the method and answers as if it were another"
    if response.is_server_error:
        return "the route breaks on a method it does not implement"
    return "a route must say which methods it implements"
