"""Learning Assistant users for Locust, and the rules that keep a load run safe.

Run it through the harness (``pytest --target NAME -m load``), or by hand exactly the same
way on any machine that has Locust and this folder::

    PD_LOAD_PROFILE=smoke locust -f load/locustfile.py --headless -H https://HOST

* users: ``LandingVisitor`` and ``HealthProbe`` make the quota requests of the smoke-style
  profiles (no think time, like ``ab -n N -c C``); ``Learner`` is a realistic user who
  registers or logs in, browses lessons, records learning sessions and reads progress.
* safety: the run stops early once the error ratio passes ``PD_LOAD_ABORT_ERROR_RATE``
  (after ``PD_LOAD_ABORT_MIN_REQUESTS`` requests), so a broken deploy is never hammered;
  the shape enforces the user and duration bounds.
* no lasting data: learners share a small pool of synthetic accounts per process
  (``pd-<run id>-load-<random>@example.com``), all deleted when the test stops.
* verdict: the master sets the exit code (0 within thresholds, 1 over, 3 aborted) and writes
  a summary for the harness; the stats themselves come from Locust's ``--json-file``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.lock
import gevent.ssl
import plans
import profiles
import requests
from locust import FastHttpUser, between, events, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

logger = logging.getLogger("postdeploy.load")

USER_AGENT = "postdeploy-load/0.1 (Locust)"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_ACCOUNTS = 10
DEFAULT_ABORT_ERROR_RATE = 0.1
DEFAULT_ABORT_MIN_REQUESTS = 50
ABORT_CHECK_INTERVAL_S = 0.5
SYNTHETIC_DOMAIN = "example.com"
#: Learning session a learner records: seconds spent and score.
SESSION_DURATION_S = (60, 900)
SESSION_SCORE = (40, 100)

# The contract's paths (postdeploy/contract.py). Named here because load/ also runs where
# postdeploy is not installed (remote workers); a self-test keeps the two the same.
API_REGISTER = "/api/auth/register"
API_LOGIN = "/api/auth/login"
API_CONTENT = "/api/learning/content"
API_SESSION = "/api/learning/session"
API_PROGRESS = "/api/learning/progress"
API_PROFILE = "/api/learning/profile"
API_ACCOUNT = "/api/users/me"
PAGE_DASHBOARD = "/dashboard"


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


PROFILE = os.environ.get(plans.ENV_PROFILE) or plans.DEFAULT_PROFILE
if PROFILE not in plans.PLANS:
    raise SystemExit(
        f"{plans.ENV_PROFILE}={PROFILE!r} is not a load profile; "
        f"valid profiles: {', '.join(plans.PLANS)}"
    )
PLAN = plans.PLANS[PROFILE]
CA_FILE = os.environ.get(plans.ENV_CA_FILE) or None
RUN_ID = os.environ.get(plans.ENV_RUN_ID) or time.strftime("%Y%m%d%H%M%S")
TIMEOUT_S = _env_number(plans.ENV_TIMEOUT_S, DEFAULT_TIMEOUT_S)

#: The one shape Locust sees in this file: the profile that PD_LOAD_PROFILE names.
Shape = profiles.SHAPES[PROFILE]


def _ssl_context() -> gevent.ssl.SSLContext:
    """Certificates are always verified: against the target's CA file when one is given."""
    return gevent.ssl.create_default_context(cafile=CA_FILE)


class TargetUser(FastHttpUser):
    abstract = True
    insecure = False
    ssl_context_factory = staticmethod(_ssl_context)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S
    default_headers = {"User-Agent": USER_AGENT}  # noqa: RUF012 - Locust's own attribute


# -- quota users: N requests at C concurrent, then stop -------------------------------------


def _quota(user_class: str) -> plans.Quota | None:
    return next((q for q in PLAN.quotas if q.user_class == user_class), None)


class QuotaUser(TargetUser):
    """Requests its share of a quota back to back (no think time), then stops."""

    abstract = True
    quota: plans.Quota | None = None

    def on_start(self) -> None:
        if self.quota is None:
            self.remaining: float = 0
        else:
            self.remaining = math.inf if self.quota.unlimited else self.quota.per_user

    @task
    def request_the_quota_path(self) -> None:
        if self.quota is None or self.remaining <= 0:
            raise StopUser()
        self.remaining -= 1
        self.client.get(self.quota.path, name=self.quota.path)


class LandingVisitor(QuotaUser):
    quota = _quota(plans.LANDING)
    fixed_count = quota.users if quota else 0


class HealthProbe(QuotaUser):
    quota = _quota(plans.HEALTH)
    fixed_count = quota.users if quota else 0


# -- learners and their synthetic accounts --------------------------------------------------


@dataclass
class Account:
    email: str
    password: str = field(repr=False)
    token: str = field(default="", repr=False)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class AccountPool:
    """A few synthetic accounts per process, shared by its learners; deleted at the end."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.ready: list[Account] = []
        self.created: list[Account] = []
        self.handed_out = 0
        self._lock = gevent.lock.BoundedSemaphore()

    def acquire(self, user: FastHttpUser) -> Account:
        """A logged-in account: a new one while the pool is filling, else a shared one."""
        with self._lock:
            if len(self.ready) < self.size:
                account = self._register(user)
                self.ready.append(account)
            else:
                account = self.ready[self.handed_out % len(self.ready)]
            self.handed_out += 1
            return account

    def _register(self, user: FastHttpUser) -> Account:
        email = f"pd-{RUN_ID}-load-{secrets.token_hex(4)}@{SYNTHETIC_DOMAIN}"
        account = Account(email, secrets.token_urlsafe(18))
        credentials = {"email": account.email, "password": account.password}
        with user.client.post(
            API_REGISTER,
            json={**credentials, "name": "Load Learner"},
            name=API_REGISTER,
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                response.failure(f"registration answered {response.status_code}")
                raise StopUser()
        self.created.append(account)
        with user.client.post(
            API_LOGIN, json=credentials, name=API_LOGIN, catch_response=True
        ) as response:
            token = (response.json() or {}).get("access_token") if response.ok else None
            if not token:
                response.failure(f"login answered {response.status_code} without a token")
                raise StopUser()
        account.token = token
        return account

    def cleanup(self, host: str) -> dict[str, Any]:
        """Delete every account this process created; returns what was left behind."""
        leftovers = []
        with requests.Session() as session:
            session.headers["User-Agent"] = USER_AGENT
            for account in self.created:
                if not _delete_account(session, host, account):
                    leftovers.append(account.email)
        record = {
            "pid": os.getpid(),
            "created": len(self.created),
            "deleted": len(self.created) - len(leftovers),
            "leftovers": leftovers,
        }
        self.created.clear()
        self.ready.clear()
        return record


def _delete_account(session: requests.Session, host: str, account: Account) -> bool:
    # verify per request: a session-level value loses to REQUESTS_CA_BUNDLE in the environment
    options: dict[str, Any] = {"timeout": TIMEOUT_S, "verify": CA_FILE or True}
    try:
        if account.token:
            response = session.delete(host + API_ACCOUNT, headers=account.auth, **options)
            if response.status_code in (204, 404):
                return True
        credentials = {"email": account.email, "password": account.password}
        response = session.post(host + API_LOGIN, json=credentials, **options)
        if response.status_code != 200:
            return False
        account.token = response.json().get("access_token", "")
        response = session.delete(host + API_ACCOUNT, headers=account.auth, **options)
        return response.status_code in (204, 404)
    except requests.RequestException as exc:
        logger.warning("could not delete synthetic account %s: %s", account.email, exc)
        return False


POOL = AccountPool(int(_env_number(plans.ENV_ACCOUNTS, DEFAULT_ACCOUNTS)))


class Learner(TargetUser):
    """A Learning Assistant user: logs in, browses, learns, checks progress."""

    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.account = POOL.acquire(self)
        self.lessons = self._lesson_ids()

    def _lesson_ids(self) -> list[int]:
        with self.client.get(API_CONTENT, name=API_CONTENT, catch_response=True) as response:
            items = (response.json() or {}).get("items") if response.ok else None
            if not items:
                response.failure("no lessons delivered")
                return []
            return [item["id"] for item in items]

    @task(4)
    def browse_lessons(self) -> None:
        self.lessons = self._lesson_ids() or self.lessons

    @task(3)
    def open_a_lesson(self) -> None:
        if self.lessons:
            lesson = random.choice(self.lessons)
            self.client.get(f"{API_CONTENT}/{lesson}", name=f"{API_CONTENT}/[id]")

    @task(2)
    def record_a_learning_session(self) -> None:
        if self.lessons:
            self.client.post(
                API_SESSION,
                headers=self.account.auth,
                json={
                    "content_id": random.choice(self.lessons),
                    "duration_s": random.randint(*SESSION_DURATION_S),
                    "score": random.randint(*SESSION_SCORE),
                },
                name=API_SESSION,
            )

    @task(2)
    def read_progress(self) -> None:
        self.client.get(API_PROGRESS, headers=self.account.auth, name=API_PROGRESS)

    @task(1)
    def read_the_learning_profile(self) -> None:
        self.client.get(API_PROFILE, headers=self.account.auth, name=API_PROFILE)

    @task(1)
    def open_the_dashboard(self) -> None:
        self.client.get(PAGE_DASHBOARD, name=PAGE_DASHBOARD)


# -- safety and verdict (master or single process) ------------------------------------------


@dataclass
class RunState:
    started: float | None = None
    aborted: bool = False
    abort_reason: str = ""
    watcher: Any = None


STATE = RunState()
ABORT_ERROR_RATE = _env_number(plans.ENV_ABORT_ERROR_RATE, DEFAULT_ABORT_ERROR_RATE)
ABORT_MIN_REQUESTS = _env_number(plans.ENV_ABORT_MIN_REQUESTS, DEFAULT_ABORT_MIN_REQUESTS)


def _controls(environment: Any) -> bool:
    """True on the process that decides: the master, or the only process."""
    return not isinstance(environment.runner, WorkerRunner)


def _watch_error_rate(environment: Any) -> None:
    """Stop the whole run as soon as the error ratio passes the abort threshold."""
    while True:
        gevent.sleep(ABORT_CHECK_INTERVAL_S)
        total = environment.runner.stats.total
        if total.num_requests >= ABORT_MIN_REQUESTS and total.fail_ratio > ABORT_ERROR_RATE:
            STATE.aborted = True
            STATE.abort_reason = (
                f"error rate {total.fail_ratio:.1%} after {total.num_requests} requests passed "
                f"the abort threshold {ABORT_ERROR_RATE:.1%}; stopped early so a broken "
                "deployment is not hammered"
            )
            logger.error("ABORTING: %s", STATE.abort_reason)
            environment.runner.quit()
            return


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    if not _controls(environment):
        return
    STATE.started = time.monotonic()
    STATE.watcher = gevent.spawn(_watch_error_rate, environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    if STATE.watcher is not None:
        STATE.watcher.kill(block=False)
    if POOL.created:
        record = POOL.cleanup(environment.host or "")
        logger.info("deleted %d of %d synthetic accounts", record["deleted"], record["created"])
        if record["leftovers"]:
            logger.error("synthetic accounts left behind: %s", ", ".join(record["leftovers"]))
        cleanup_file = os.environ.get(plans.ENV_CLEANUP_FILE)
        if cleanup_file:
            with open(cleanup_file, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")


def _exit_code(total: Any) -> tuple[int, list[str]]:
    if STATE.aborted:
        return plans.EXIT_ABORTED, [STATE.abort_reason]
    problems = []
    error_rate = _env_number(plans.ENV_ERROR_RATE, -1.0)
    if error_rate >= 0 and total.fail_ratio >= error_rate:
        problems.append(f"error rate {total.fail_ratio:.2%} is not below {error_rate:.2%}")
    p95_limit = _env_number(plans.ENV_P95_MS, -1.0)
    p95 = total.get_response_time_percentile(0.95)
    if p95_limit >= 0 and p95 >= p95_limit:
        problems.append(f"p95 {p95:.0f} ms is not below {p95_limit:.0f} ms")
    return (plans.EXIT_THRESHOLDS if problems else plans.EXIT_OK), problems


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    if not _controls(environment) or environment.runner is None:
        return
    total = environment.runner.stats.total
    code, problems = _exit_code(total)
    environment.process_exit_code = code
    summary = {
        "profile": PLAN.name,
        "exit_code": code,
        "problems": problems,
        "aborted": STATE.aborted,
        "abort_reason": STATE.abort_reason,
        "run_s": time.monotonic() - STATE.started if STATE.started else 0.0,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "planned_requests": PLAN.planned_requests,
        "peak_users": PLAN.peak_users,
        "max_users": getattr(environment.shape_class, "max_users", None),
    }
    summary_file = os.environ.get(plans.ENV_SUMMARY_FILE)
    if summary_file:
        with open(summary_file, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)
