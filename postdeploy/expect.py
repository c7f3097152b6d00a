"""Assertions that explain themselves: what was expected, what came back, and where.

A person reading a failure in the report should not need the test's code.
"""

from __future__ import annotations

from typing import Any

import httpx

#: How much of a body a failure message quotes.
QUOTE_CHARS = 300


def where(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url.path}"


def quote(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:QUOTE_CHARS] + ("..." if len(text) > QUOTE_CHARS else "")


def expect_status(response: httpx.Response, *expected: int, what: str = "") -> None:
    """The response has one of the ``expected`` status codes."""
    if response.status_code in expected:
        return
    wanted = " or ".join(str(code) for code in expected)
    prefix = f"{what}: " if what else ""
    raise AssertionError(
        f"{prefix}expected HTTP {wanted} from {where(response)}, "
        f"got {response.status_code}: {quote(response)}"
    )


def json_body(response: httpx.Response) -> Any:
    """The decoded JSON body; fails with the content type and body if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise AssertionError(
            f"expected a JSON body from {where(response)}, got "
            f"{response.headers.get('content-type', 'no content type')}: {quote(response)}"
        ) from None


def expect_fields(data: Any, fields: tuple[str, ...] | list[str], source: str) -> None:
    """``data`` is an object carrying every name in ``fields``."""
    assert isinstance(data, dict), f"{source}: expected a JSON object, got {type(data).__name__}"
    missing = [name for name in fields if name not in data]
    assert not missing, f"{source}: missing field(s) {', '.join(missing)} in {sorted(data)}"


def expect_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """An error response in the contract's shape ``{"error": {"code", "message"}}``."""
    expect_status(response, status)
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    shaped = isinstance(error, dict) and {"code", "message"} <= set(error)
    assert shaped, (
        f"{where(response)}: expected an error body {{'error': {{'code', 'message'}}}}, "
        f"got {quote(response)}"
    )
    assert isinstance(error, dict)
    if code is not None:
        assert error["code"] == code, (
            f"{where(response)}: expected error code {code!r}, got {error['code']!r}"
        )
    return error
