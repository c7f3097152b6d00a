"""Debug surfaces a production deployment must not have.

* Error pages: a forced error (the app's test-only error route when its token is known, and a
  few requests that commonly break handlers) must answer without a framework debug page or a
  stack trace. The stack-trace and framework-text signatures are the input-validation suite's
  (``ERROR_SIGNATURES``), plus the markers of the debug pages of common frameworks.
* Interactive API consoles (Swagger UI, ReDoc, GraphiQL) are off unless the target allows
  them (``security.api_console``); the OpenAPI document is judged by
  ``security.openapi_public``.
* Version banners are judged in one place: the ``Server and X-Powered-By`` header
  requirement of ``postdeploy.security.headers``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from postdeploy.security.input_validation import ERROR_SIGNATURES

#: Markers of framework debug pages (shown when debug mode is on in production).
DEBUG_PAGE_SIGNATURES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a framework debug page",
        re.compile(
            r"Werkzeug Debugger|__debugger__|You're seeing this error because you have "
            r"<code>DEBUG = True|Using the URLconf defined in|Whoops! There was an error|"
            r"Action Controller: Exception caught|<title>Starlette Debugger</title>|"
            r"class=\"traceback-container\""
        ),
    ),
    *ERROR_SIGNATURES,
)
#: What an interactive console's page is made of.
CONSOLE_SIGNATURE = re.compile(
    r"(?i)swagger-ui|SwaggerUIBundle|<redoc|redoc\.standalone|graphiql|GraphQL Playground"
)
_OPENAPI_KEYS = ("openapi", "swagger")


@dataclass(frozen=True)
class ForcedError:
    """A request expected to hit an error path: (method, path, headers, json body)."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: dict[str, str] | None = None

    def describe(self) -> str:
        return f"{self.method} {self.path}"


def debug_page_problem(response: httpx.Response, what: str) -> str | None:
    """A problem naming the first debug signature in ``response``'s body, or None."""
    text = response.text
    for kind, pattern in DEBUG_PAGE_SIGNATURES:
        match = pattern.search(text)
        if match:
            start = max(match.start() - 40, 0)
            context = " ".join(text[start : match.end() + 60].split())
            return (
                f"{what} answered HTTP {response.status_code} "
                f"({response.headers.get('content-type', 'no content type')}) with {kind}: "
                f"...{context}..."
            )
    return None


def error_page_problems(
    client: httpx.Client, forced: Iterable[ForcedError]
) -> tuple[list[str], int]:
    """(problems, server errors provoked) for the forced errors."""
    problems, provoked = [], 0
    for error in forced:
        response = client.request(
            error.method, error.path, headers=dict(error.headers), json=error.body
        )
        provoked += response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR
        if problem := debug_page_problem(response, error.describe()):
            problems.append(problem)
    return problems, provoked


def console_problems(client: httpx.Client, paths: Iterable[str]) -> list[str]:
    problems = []
    for path in paths:
        response = client.get(path)
        if response.is_success and CONSOLE_SIGNATURE.search(response.text):
            problems.append(
                f"GET {response.url} answered HTTP {response.status_code} with an interactive "
                "API console (anyone can browse and call the API from it)"
            )
    return problems


def openapi_problem(client: httpx.Client, path: str) -> str | None:
    response = client.get(path)
    if not response.is_success:
        return None
    try:
        document = response.json()
    except ValueError:
        return None
    if isinstance(document, dict) and any(key in document for key in _OPENAPI_KEYS):
        operations = sum(len(item) for item in (document.get("paths") or {}).values())
        return (
            f"GET {response.url} answered HTTP {response.status_code} with the OpenAPI "
            f"document ({operations} operations described)"
        )
    return None
