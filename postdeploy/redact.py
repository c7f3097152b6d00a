"""The one place where secrets are removed from anything postdeploy records.

Every HTTP exchange attached to a report, every audit line and every message that may carry
data from a target passes through here. Redaction keeps the *shape* (a header is still there,
a JSON field still has a value) so a reader can see what was sent without seeing the secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
#: A secret's part shorter than this is not scrubbed on its own (too likely to match by chance).
MIN_PART_LENGTH = 6
#: A path segment at least this long, with letters and digits both, is taken for a token.
TOKEN_SEGMENT_LENGTH = 12

#: Header names whose values are always secret (compared lower-case).
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-csrf-token",
        "x-api-key",
        "x-postdeploy-token",
        "fly-api-token",
    }
)

#: JSON keys / query parameters / form fields whose values are secret (substring match).
SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "csrf",
    "routing_key",
    "session",
    "dsn",
    "private_key",
)

#: Free-text patterns that look like credentials wherever they appear, with what replaces them,
#: and the literals one of which every match contains (in the lower-cased text when the
#: pattern ignores case): a text without any of them cannot match, and skipping the pattern
#: keeps a megabyte of Locust report from costing ten regex scans.
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str, tuple[str, ...], bool], ...] = (
    (
        re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
        rf"\1 {REDACTED}",
        ("bearer", "basic"),
        True,
    ),
    (  # JWT
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
        REDACTED,
        ("eyJ",),
        False,
    ),
    (
        re.compile(r"(?i)\b(la_session|session|token|csrf_token)=([^;,\s&]+)"),
        rf"\1={REDACTED}",
        ("session=", "token="),
        True,
    ),
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"),
        rf"\1{REDACTED}@",
        ("://",),
        False,
    ),
    # a JSON secret field quoted inside free text: "access_token": "..."
    (
        re.compile(
            r'(?i)("(?!token_type")[a-z_]*(?:password|token|secret|api_?key|routing_key)[a-z_]*"'
            r'\s*:\s*")[^"]*(")'
        ),
        rf"\1{REDACTED}\2",
        ("password", "token", "secret", "api_key", "apikey", "routing_key"),
        True,
    ),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED, ("AKIA",), False),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED, ("xox",), False),
    (re.compile(r"\bFlyV1 [A-Za-z0-9_=+/,-]{8,}"), REDACTED, ("FlyV1 ",), False),
    (re.compile(r"\b(fo1|fm2)_[A-Za-z0-9_-]{8,}"), REDACTED, ("fo1_", "fm2_"), False),
    (re.compile(r"\brnd_[A-Za-z0-9]{8,}"), REDACTED, ("rnd_",), False),
)


#: Keys that contain a secret-looking word but hold no secret.
NOT_SECRET_KEYS = frozenset({"token_type", "session_id_header", "sessions", "csrf_header"})


def is_secret_key(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    if lowered in NOT_SECRET_KEYS:
        return False
    return any(part in lowered for part in SECRET_KEY_PARTS)


def redact_text(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Remove credential-looking substrings and any of ``extra_secrets`` from free text."""
    for secret in extra_secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    lowered = _folded(text)
    for pattern, replacement, literals, ignore_case in SECRET_PATTERNS:
        haystack = lowered if ignore_case else text
        if any(literal in haystack for literal in literals):
            scrubbed = pattern.sub(replacement, text)
            if scrubbed != text:
                text, lowered = scrubbed, _folded(scrubbed)
    return text


#: The four non-ASCII letters that ``re.IGNORECASE`` matches to ASCII ones (the re module's
#: documentation), mapped to them before lower-casing: the case-free guard then finds every
#: literal the pattern would.
_ASCII_FOLDS = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}


def _folded(text: str) -> str:
    if not text.isascii():
        for letter, ascii_letter in _ASCII_FOLDS.items():
            if letter in text:
                text = text.replace(letter, ascii_letter)
    return text.lower()


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (name, REDACTED if name.lower() in SECRET_HEADERS else redact_text(value))
        for name, value in headers
    ]


def redact_data(data: Any) -> Any:
    """Redact a decoded JSON value: secret keys lose their values, strings are scrubbed."""
    if isinstance(data, Mapping):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact_data(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact_data(v) for v in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


def redact_body(body: str, content_type: str = "") -> str:
    """Redact a request or response body, structurally when it is JSON or a form."""
    if not body:
        return body
    if "json" in content_type or body.lstrip().startswith(("{", "[")):
        try:
            return json.dumps(redact_data(json.loads(body)), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    if "x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(body, keep_blank_values=True)
        return urlencode([(k, REDACTED if is_secret_key(k) else v) for k, v in pairs])
    return redact_text(body)


def secret_parts(value: str) -> list[str]:
    """``value`` and, when it is a URL, each part of it that is a secret of its own: the
    userinfo (``user:TOKEN``) and its password, query values, and path segments that look like
    tokens (a Slack webhook's ``T0/B0/xyz``). A message that prints a part of a secret - a
    host with its userinfo, one segment of a webhook path - then still loses it. Parts shorter
    than :data:`MIN_PART_LENGTH` are left out."""
    parts = [value]
    split = urlsplit(value) if "://" in value else None
    if split is not None and split.netloc:
        if "@" in split.netloc:
            userinfo = split.netloc.rsplit("@", 1)[0]
            parts += [userinfo, unquote(userinfo)]
            if split.password:
                parts += [split.password, unquote(split.password)]
        parts += [v for _, v in parse_qsl(split.query, keep_blank_values=True)]
        parts += [s for s in split.path.split("/") if _looks_like_token(s)]
    return [p for p in dict.fromkeys(parts) if len(p) >= MIN_PART_LENGTH]


def _looks_like_token(segment: str) -> bool:
    return (
        len(segment) >= TOKEN_SEGMENT_LENGTH
        and any(c.isdigit() for c in segment)
        and any(c.isalpha() for c in segment)
    )


def public_host(url: str) -> str:
    """Where ``url`` points - host and port - never its userinfo; for messages."""
    parts = urlsplit(url)
    if not parts.netloc:
        return "an invalid URL"
    return parts.netloc.rsplit("@", 1)[-1]


def redact_url(url: str) -> str:
    """Redact secret query parameters and userinfo in a URL."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if is_secret_key(k) else v) for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
