"""The run's account pool: registered once, lent to one test at a time, shared by processes,
spread over the accounts' login limits, deleted at the end of the run."""

from __future__ import annotations

import itertools
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time

import httpx
import pytest

from postdeploy.accounts import AccountPool, registry_path
from postdeploy.budget import WindowBudget, account_key
from postdeploy.contract import PATHS
from postdeploy.users import SyntheticUser, UserFactory

FUNCTIONAL = "suites/functional"


@pytest.fixture
def pool(tmp_path):
    """A pool whose new accounts are counted, not registered anywhere."""
    counter = itertools.count()
    made: list[str] = []

    def make() -> SyntheticUser:
        user = SyntheticUser(f"pd-test-{next(counter)}@example.com", "pw", "Pooled", token="t")
        made.append(user.email)
        return user

    pool = AccountPool(registry_path(tmp_path, "run1", "t"), make=make)
    pool.made = made  # type: ignore[attr-defined]
    return pool


def test_an_account_is_lent_to_one_test_at_a_time_and_reused_after(pool):
    first = pool.lease()
    second = pool.lease()
    assert first.user.email != second.user.email  # the first is held: a second account
    first.close()
    second.close()
    again = pool.lease()
    assert again.user.email in pool.made
    assert len(pool.made) == 2  # given back accounts are reused, none registered
    assert again.user.token == "t"  # the token comes with the account: no new login


def _answering_target() -> httpx.Client:
    """A client whose target registers (201) and logs in (200) anyone."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == PATHS.register:
            return httpx.Response(201, json={"id": 7})
        return httpx.Response(200, json={"access_token": "token"})

    return httpx.Client(base_url="https://target.example", transport=httpx.MockTransport(answer))


def test_a_test_gets_distinct_accounts_and_gives_them_all_back(pool):
    factory = UserFactory(_answering_target(), run_id="run1", pool=pool)
    owner, intruder = factory(), factory()
    assert owner.email != intruder.email
    assert factory.created == []  # registered for the pool: the controller deletes them
    assert {a.email for a in pool.accounts()} == {owner.email, intruder.email}
    with pytest.raises(ValueError, match="pooled account"):
        factory.delete(owner)
    factory.cleanup()
    assert pool.made == []  # the test's own client registered them, not the pool's
    first, second = pool.lease(), pool.lease()
    assert {first.user.email, second.user.email} == {owner.email, intruder.email}


def test_another_process_holding_an_account_makes_the_pool_lend_another(pool, tmp_path):
    held = pool.lease()
    held.close()
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from postdeploy.accounts import AccountPool
        pool = AccountPool(Path({str(pool.registry)!r}), make=lambda: 1 / 0)
        lease = pool.lease()
        print(lease.user.email, flush=True)
        sys.stdin.read()
    """)
    other = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == held.user.email
        mine = pool.lease()
        assert mine.user.email != held.user.email
    finally:
        other.communicate("", timeout=30)


def test_an_account_near_its_login_limit_is_passed_over(pool, tmp_path):
    logins = WindowBudget(tmp_path / "logins.json", limit=5, window_s=60)
    pool.logins = logins
    lease = pool.lease()
    lease.close()
    for _ in range(4):
        logins.acquire(account_key(lease.user.email))
    fresh = pool.lease()
    assert fresh.user.email != lease.user.email
    assert len(pool.made) == 2


def test_the_registry_is_readable_by_its_owner_only(pool):
    pool.lease()
    assert stat.S_IMODE(pool.registry.stat().st_mode) == 0o600


def test_logins_are_paced_per_account_and_invalid_ones_give_their_slot_back(tmp_path):
    logins = WindowBudget(tmp_path / "logins.json", limit=1, window_s=0.5)
    one, other = account_key("a@example.com"), account_key("b@example.com")
    first = logins.acquire(one)
    logins.acquire(other)  # another account's window: no wait
    started = time.monotonic()
    logins.acquire(one)
    assert time.monotonic() - started > 0.4  # the same account waited for its window
    logins.release(first, one)
    assert "a@example.com" not in (tmp_path / "logins.json").read_text()  # digests only


def test_a_run_shares_the_pool_between_workers_and_deletes_it_at_the_end(local_env):
    local_env.platform.deploy("1.0.0")
    run = local_env.run("--run-id", "pooled", "-n", "2", suites=(FUNCTIONAL,))
    assert run.returncode == 0, run.output[-4000:]
    assert set(run.outcomes.values()) == {"passed"}, run.outcomes
    with sqlite3.connect(local_env.state_dir / "learning_assistant.db") as conn:
        left = conn.execute("SELECT email FROM users WHERE email LIKE 'pd-pooled-%'").fetchall()
    assert left == []
    assert not list((local_env.state_dir / "accounts").glob("pooled-*"))
