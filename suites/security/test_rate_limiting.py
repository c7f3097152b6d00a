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


def _clients(value) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [item.strip() for item in items if str(item).strip()]


@pytest.mark.rate_limit
def test_the_login_limit_is_per_client_behind_the_edge(target, recorder, run_id):
    """One client using up the login limit of an address must not lock out another client.

    A limiter behind a proxy that keys on the connection's address (the proxy's) instead of the
    forwarded client's makes every client one: a classic production defect. The check needs
    two client addresses, which the harness can present only where the edge trusts its own
    address as a proxy (the local production shape): ``security.forwarded_clients``. Like the
    check above, it wants a 429, so it has its own client (never waited out) and runs last.
    """
    clients = _clients(target.security.forwarded_clients)
    if len(clients) < 2:
        pytest.skip(
            "needs two client addresses: set security.forwarded_clients where the edge trusts "
            "the harness's address (the local production shape), or run from two hosts"
        )
    with new_client(target, recorder, expect_rate_limit=True) as api:
        _one_client_does_not_limit_another(api, target, run_id, clients)


def _one_client_does_not_limit_another(api, target, run_id, clients: list[str]) -> None:
    first, second = clients[:2]
    limit = int(target.security.rate_limit_login)
    budget = limit + int(target.security.rate_limit_margin)
    address = f"{SYNTHETIC_PREFIX}{run_id}-perclient-{secrets.token_hex(4)}@{SYNTHETIC_DOMAIN}"
    attempt = {"email": address, "password": WRONG_PASSWORD}
    statuses: list[int] = []
    for _ in range(budget):
        response = api.post(PATHS.login, json=attempt, headers={"X-Forwarded-For": first})
        statuses.append(response.status_code)
        if response.status_code == RATE_LIMITED:
            break
    if RATE_LIMITED not in statuses:
        pytest.skip(
            f"client {first} was never limited in {budget} failed logins (statuses "
            f"{', '.join(map(str, statuses))}): test_login_is_rate_limited_with_retry_after "
            "judges that; whether limits are per client cannot be told"
        )
    other = api.post(PATHS.login, json=attempt, headers={"X-Forwarded-For": second})
    assert other.status_code != RATE_LIMITED, (
        f"POST {PATHS.login} from client {second} was refused with 429 after client {first} "
        f"used up the login limit for {address}: the rate limit keys on the proxy's address, "
        "not the client's, so one client locks everyone behind the edge out "
        f"(X-Forwarded-For ignored or mis-read): {quote(other)}"
    )
