"""Security validation - rate limiting working as configured.

A bounded burst of failed logins for one synthetic, unregistered address: the check stops at
the first 429 and never sends more than ``security.rate_limit_login`` + ``rate_limit_margin``
requests, so it is safe against production (it locks out nobody real).
"""

from __future__ import annotations

import email.utils
import secrets

import pytest

from postdeploy.contract import PATHS
from postdeploy.expect import quote
from postdeploy.http import new_client
from postdeploy.users import SYNTHETIC_DOMAIN, SYNTHETIC_PREFIX

RATE_LIMITED = 429
WRONG_PASSWORD = "pd-rate-limit-probe"


def retry_after_problem(value: str | None) -> str | None:
    """What is wrong with a Retry-After value (delay-seconds or an HTTP-date), if anything."""
    if value is None:
        return "the 429 has no Retry-After header"
    value = value.strip()
    if value.isdecimal():
        return None if int(value) > 0 else f"Retry-After is {value!r}: it must be > 0 seconds"
    if _is_date(value):
        return None
    return f"Retry-After {value!r} is neither a number of seconds nor an HTTP date"


def _is_date(value: str) -> bool:
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return True


@pytest.mark.rate_limit
def test_login_is_rate_limited_with_retry_after(target, recorder, run_id):
    """Failed logins for one address until the target answers 429 (with its own client: the
    429 is what this check wants, so it is never waited out). Runs last."""
    with new_client(target, recorder, expect_rate_limit=True) as api:
        _login_until_refused(api, target, run_id)


def _login_until_refused(api, target, run_id) -> None:
    limit = int(target.security.rate_limit_login)
    budget = limit + int(target.security.rate_limit_margin)
    address = f"{SYNTHETIC_PREFIX}{run_id}-ratelimit-{secrets.token_hex(4)}@{SYNTHETIC_DOMAIN}"
    statuses: list[int] = []
    response = None
    for _ in range(budget):
        response = api.post(PATHS.login, json={"email": address, "password": WRONG_PASSWORD})
        statuses.append(response.status_code)
        if response.status_code == RATE_LIMITED:
            break
    seen = ", ".join(map(str, statuses))
    if RATE_LIMITED not in statuses:
        pytest.fail(
            f"POST {PATHS.login}: {budget} failed logins for one address in a row were never "
            f"refused with 429 (configured limit {limit}); statuses: {seen}"
        )
    attempt = len(statuses)
    assert attempt <= limit + 1, (
        f"POST {PATHS.login}: the first 429 came at attempt {attempt}, but the configured limit "
        f"is {limit} (statuses: {seen})"
    )
    assert response is not None
    problem = retry_after_problem(response.headers.get("retry-after"))
    assert problem is None, f"POST {PATHS.login} attempt {attempt}: {problem}: {quote(response)}"
