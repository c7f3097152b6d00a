"""Forged credentials, crafted from the structure of a real token (a JWT: header.claims.sig).

Nothing here knows the target's signing key: a forged token is either unsigned (``alg:
none``) or carries a signature that cannot match. A target must refuse both; one that accepts
either is trusting claims it did not verify. (A forged "expired" token would only be a second
bad-signature case: expiry is checked with a short-lived token the target itself issued, in
``suites/security/test_auth.py``.)
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

    from postdeploy.config import Target
    from postdeploy.users import SyntheticUser

TOKEN_PARTS = 3
#: How far in the past the forged expiry lies.
EXPIRED_AGO_S = 3600
NO_CREDENTIALS = "no credentials"
BAD_SIGNATURE = "bad signature"
EXPIRED = "expired"
ALG_NONE = "alg none"
#: Every kind of forged credential a protected route must refuse.
KINDS = (NO_CREDENTIALS, BAD_SIGNATURE, ALG_NONE)


class TokenFormatError(ValueError):
    """The target's token is not a JWT, so it cannot be forged by structure."""


def _decode(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise TokenFormatError(f"a token part is not base64url JSON ({exc})") from None
    if not isinstance(value, dict):
        raise TokenFormatError("a token part is not a JSON object")
    return value


def _encode(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _different(tail: str) -> str:
    return "AAAA" if tail != "AAAA" else "BBBB"


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``(header, claims, signature)`` of a JWT; TokenFormatError if it is not one."""
    parts = token.split(".")
    if len(parts) != TOKEN_PARTS:
        raise TokenFormatError(
            f"expected a JWT (header.claims.signature), got {len(parts)} part(s)"
        )
    return _decode(parts[0]), _decode(parts[1]), parts[2]


def forge(token: str, kind: str, now: float | None = None) -> str | None:
    """A forged variant of ``token`` of the given kind; None for ``no credentials``."""
    if kind == NO_CREDENTIALS:
        return None
    if kind == BAD_SIGNATURE and len(token.split(".")) != TOKEN_PARTS:
        return token[:-4] + _different(token[-4:])  # an opaque token: tamper with its end
    header, claims, signature = split(token)
    head, body = token.split(".")[:2]
    if kind == BAD_SIGNATURE:
        return f"{head}.{body}.{signature[:-4]}{_different(signature[-4:])}"
    if kind == EXPIRED:
        issued = int(time.time() if now is None else now) - 2 * EXPIRED_AGO_S
        expired = {**claims, "iat": issued, "exp": issued + EXPIRED_AGO_S}
        return f"{head}.{_encode(expired)}.{signature}"
    if kind == ALG_NONE:
        return f"{_encode({**header, 'alg': 'none'})}.{body}."
    raise ValueError(f"unknown kind of forged credential {kind!r}; one of {', '.join(KINDS)}")


# -- a short-lived token the target issued ----------------------------------------------------

#: Lifetime asked for the expired-token check's login, and the wait past it (clock skew).
SHORT_TTL_S = 2
EXPIRY_MARGIN_S = 1.5


@dataclass
class ShortLivedLogin:
    """A login asking the target for a :data:`SHORT_TTL_S` token, made early in the run so
    its lifetime runs out while other checks run (``issued_at`` is ``time.monotonic()``)."""

    response: httpx.Response | None = None
    #: GET of the caller's account with the fresh token, right after the login
    fresh_status: int | None = None
    issued_at: float = 0.0
    #: the target issues no short-lived token to the harness (no test-only secret)
    secret_missing: bool = False


def short_lived_login(target: Target, user: SyntheticUser) -> ShortLivedLogin:
    """Log ``user`` in for a short-lived token, and use it once while it is fresh."""
    from postdeploy.contract import ERROR_TRIGGER_HEADER, PATHS, SHORT_TTL_PARAM
    from postdeploy.http import new_client
    from postdeploy.monitoring.error_tracking import trigger_token

    secret = trigger_token(target)
    if not secret:
        return ShortLivedLogin(secret_missing=True)
    with new_client(target) as client:
        issued_at = time.monotonic()
        response = client.post(
            PATHS.login,
            params={SHORT_TTL_PARAM: str(SHORT_TTL_S)},
            json=user.credentials,
            headers={ERROR_TRIGGER_HEADER: secret},
        )
        response.read()
        login = ShortLivedLogin(response, issued_at=issued_at)
        if response.status_code == 200:
            token = response.json().get("access_token", "")
            fresh = client.get(PATHS.me, headers={"Authorization": f"Bearer {token}"})
            login.fresh_status = fresh.status_code
    return login
