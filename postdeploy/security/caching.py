"""Answers carrying one user's data must never be stored by a shared cache.

The judge follows RFC 9111: a shared cache may store a response unless it carries
``Cache-Control: no-store`` or an unqualified ``private`` (§3, §5.2.2.7). ``public`` and
``s-maxage`` explicitly allow it, even for a request with ``Authorization`` (§3.5); without
them, a request carrying only the session cookie gets no such protection, and a 200 is
heuristically cacheable, so ``max-age``, ``Expires`` or nothing at all are all storable.
``Vary: *`` makes a stored answer unusable (§4.1), so it is not reported. ``Pragma: no-cache``
(HTTP/1.0) is not a substitute for ``Cache-Control``.

The edge check (``security.edge``) goes further on a target behind a caching proxy: two users
ask for their own data in turn and each must get their own answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class CacheControl:
    directives: dict[str, str | None]

    @classmethod
    def parse(cls, values: list[str]) -> CacheControl:
        directives: dict[str, str | None] = {}
        for value in values:
            for part in value.split(","):
                name, _, argument = part.strip().partition("=")
                if name:
                    directives[name.strip().lower()] = argument.strip().strip('"') or None
        return cls(directives)

    def has(self, name: str) -> bool:
        return name in self.directives


def shared_cache_storable(headers: httpx.Headers) -> str | None:
    """Why a shared cache may store this answer (RFC 9111), or None if it may not."""
    values = headers.get_list("cache-control")
    control = CacheControl.parse(values)
    shown = f"Cache-Control: {', '.join(values)}" if values else "no Cache-Control"
    vary = {v.strip() for v in (headers.get("vary") or "").split(",")}
    if control.has("no-store") or "*" in vary:
        return None
    if control.has("public") or control.has("s-maxage"):
        return f"{shown} lets any shared cache (CDN, proxy) store this user's answer"
    if control.has("private") and control.directives["private"] is None:
        return None
    if control.has("private"):
        return f"{shown}: private= names fields only, the rest of the answer is storable"
    if control.has("max-age") or "expires" in headers:
        return f"{shown} gives a shared cache an explicit freshness lifetime for it"
    return f"{shown}: without no-store or private a shared cache may store it (heuristically)"


def private_caching_problem(response: httpx.Response) -> str | None:
    reason = shared_cache_storable(response.headers)
    if reason is None:
        return None
    return (
        f"{response.request.method} {response.url} (HTTP {response.status_code}, a user's data): "
        f"{reason}; expected Cache-Control: no-store or private"
    )


def someone_elses_answer(response: httpx.Response, own: str, others: dict[str, str]) -> str | None:
    """A problem if ``response`` (for the user ``own``) carries another user's identity."""
    for who, marker in others.items():
        if marker in response.text and marker != own:
            age = response.headers.get("age")
            cached = f" (Age: {age}, from the edge's cache)" if age else ""
            return (
                f"{response.request.method} {response.url} for {own} answered HTTP "
                f"{response.status_code} with {who}'s data{cached}: the edge served one "
                "user's answer to another"
            )
    return None
