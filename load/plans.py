"""What each load profile does, as plain data (no Locust import).

The harness (``postdeploy/performance/load.py``) reads this file to validate
``--load-profile`` and to
check a profile against the target's bounds *before* Locust starts; ``profiles.py`` turns
each plan into a ``LoadTestShape``. Two kinds of traffic make up a plan:

* **quotas** — "N requests at C concurrent" on one path, the way the operations plan states
  its smoke test (1000 requests at 10 concurrent on ``/``, 500 at 5 on ``/api/health``):
  C users without think time share the N requests, then stop;
* **learners** — realistic Learning Assistant users (register or log in, browse lessons,
  record learning sessions, read progress) with think time, following time-based stages.

A quota plan ends once every quota is done (and ``min_s`` has passed); a staged plan ends
after its last stage. Every plan stops at ``max_s`` whatever happens.
"""

from __future__ import annotations

from dataclasses import dataclass

#: How the harness talks to the locustfile: environment variables (the same on every
#: process, so a worker on another machine only needs them and the files in load/).
ENV_PROFILE = "PD_LOAD_PROFILE"
ENV_CA_FILE = "PD_LOAD_CA_FILE"  # PEM bundle to verify the target's certificate with
ENV_RUN_ID = "PD_LOAD_RUN_ID"  # tags the synthetic accounts
ENV_TIMEOUT_S = "PD_LOAD_TIMEOUT_S"  # timeout of each request
ENV_ACCOUNTS = "PD_LOAD_ACCOUNTS"  # synthetic accounts per process
ENV_MAX_USERS = "PD_LOAD_MAX_USERS"
ENV_MAX_DURATION_S = "PD_LOAD_MAX_DURATION_S"
ENV_ABORT_ERROR_RATE = "PD_LOAD_ABORT_ERROR_RATE"
ENV_ABORT_MIN_REQUESTS = "PD_LOAD_ABORT_MIN_REQUESTS"
ENV_ERROR_RATE = "PD_LOAD_ERROR_RATE"  # thresholds behind the exit code
ENV_P95_MS = "PD_LOAD_P95_MS"
ENV_SUMMARY_FILE = "PD_LOAD_SUMMARY_FILE"  # the master writes its summary here (JSON)
ENV_CLEANUP_FILE = "PD_LOAD_CLEANUP_FILE"  # each process appends its account cleanup (JSONL)

DEFAULT_PROFILE = "smoke"

#: Exit codes of the Locust master (or single process).
EXIT_OK = 0
EXIT_THRESHOLDS = 1  # finished, but the error rate or the p95 is over its threshold
EXIT_ABORTED = 3  # stopped early: the error rate passed the abort threshold

#: User classes of the locustfile that the plans name.
LANDING = "LandingVisitor"
HEALTH = "HealthProbe"
LEARNER = "Learner"


@dataclass(frozen=True)
class Quota:
    """``requests`` requests shared by ``users`` concurrent users of ``user_class``.

    ``requests = 0`` means no quota: the users request back to back until the plan's time is
    up (a capacity measurement).
    """

    user_class: str
    path: str
    requests: int
    users: int

    @property
    def unlimited(self) -> bool:
        return self.requests == 0

    @property
    def per_user(self) -> int:
        return -(-self.requests // self.users)  # ceiling: the users together make them all


@dataclass(frozen=True)
class Stage:
    """Until ``until_s`` seconds into the run, hold ``learners`` learners."""

    until_s: float
    learners: int
    spawn_rate: float


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    quotas: tuple[Quota, ...] = ()
    #: learners running alongside the quotas (quota plans only)
    learners: int = 0
    stages: tuple[Stage, ...] = ()
    min_s: float = 0.0
    max_s: float = 60.0

    @property
    def peak_users(self) -> int:
        quota_users = sum(q.users for q in self.quotas)
        staged = max((s.learners for s in self.stages), default=0)
        return max(quota_users + self.learners, staged)

    @property
    def planned_requests(self) -> int:
        """Requests the quotas make (learners' requests depend on time and are not counted)."""
        return sum(q.users * q.per_user for q in self.quotas)

    @property
    def ends_by_quota(self) -> bool:
        return bool(self.quotas)

    def describe(self) -> str:
        return f"{self.name}: {self.description}"


def _smoke(name: str, landing: int, health: int, min_s: float, max_s: float, what: str) -> Plan:
    return Plan(
        name=name,
        description=(
            f"{landing} requests at 10 concurrent on /, {health} at 5 on /api/health, "
            f"with 2 learners alongside; {what}"
        ),
        quotas=(
            Quota(LANDING, "/", landing, 10),
            Quota(HEALTH, "/api/health", health, 5),
        ),
        learners=2,
        min_s=min_s,
        max_s=max_s,
    )


PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        _smoke("quick", 500, 250, 3.0, 60.0, "a few seconds (the local target's default)"),
        _smoke("smoke", 1000, 500, 5.0, 300.0, "the operations plan's post-deploy smoke test"),
        Plan(
            "capacity",
            "10 users requesting / back to back for 30 s (or [load] max_duration_s if shorter): "
            "the requests per second it sustains",
            quotas=(Quota(LANDING, "/", 0, 10),),
            max_s=30,
        ),
        Plan(
            "baseline",
            "20 learners (ramp 2/s) for 3 minutes: normal traffic",
            stages=(Stage(180, 20, 2),),
            max_s=200,
        ),
        Plan(
            "stress",
            "learners in steps of 25 up to 100, 1 minute each: where does it break",
            stages=(Stage(60, 25, 5), Stage(120, 50, 5), Stage(180, 75, 5), Stage(240, 100, 5)),
            max_s=260,
        ),
        Plan(
            "spike",
            "10 learners, a sudden jump to 100 for 30 s, back to 10: does it recover",
            stages=(Stage(60, 10, 5), Stage(90, 100, 50), Stage(150, 10, 50)),
            max_s=170,
        ),
        Plan(
            "soak",
            "30 learners for 30 minutes: leaks and slow degradation",
            stages=(Stage(1800, 30, 3),),
            max_s=1800,
        ),
    )
}
