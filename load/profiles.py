"""The load profiles as Locust ``LoadTestShape`` classes, one per plan in ``plans.py``.

``locustfile.py`` exposes exactly one of them (the one ``PD_LOAD_PROFILE`` names), because
Locust runs the first shape class it finds in the locustfile. The shape runs on the master
(or the single local process) only; it also enforces the bounds the harness passes in:
never more than ``PD_LOAD_MAX_USERS`` users, never longer than ``PD_LOAD_MAX_DURATION_S``.
"""

from __future__ import annotations

import logging
import os
from typing import ClassVar

import plans
from locust import LoadTestShape

logger = logging.getLogger("postdeploy.load")


def _bound(env_name: str, default: float) -> float:
    raw = os.environ.get(env_name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{env_name} must be a number, got {raw!r}") from None


class PlanShape(LoadTestShape):
    """Follows a :class:`plans.Plan`: quotas until done, or time-based stages of learners."""

    abstract: ClassVar[bool] = True
    plan: ClassVar[plans.Plan]

    def __init__(self) -> None:
        super().__init__()
        self.max_users = int(_bound(plans.ENV_MAX_USERS, self.plan.peak_users))
        self.limit_s = min(self.plan.max_s, _bound(plans.ENV_MAX_DURATION_S, self.plan.max_s))
        self.capped = False

    def _classes(self, names: tuple[str, ...]) -> list[type]:
        assert self.runner is not None
        return [cls for cls in self.runner.user_classes if cls.__name__ in names]

    def _users(self, wanted: int) -> int:
        if wanted > self.max_users and not self.capped:
            logger.warning(
                "profile %s wants %d users; capped at %d (%s)",
                self.plan.name, wanted, self.max_users, plans.ENV_MAX_USERS,
            )  # fmt: skip
            self.capped = True
        return min(wanted, self.max_users)

    def quotas_done(self) -> bool:
        assert self.runner is not None
        stats = self.runner.stats
        return all(
            not quota.unlimited
            and stats.get(quota.path, "GET").num_requests >= quota.users * quota.per_user
            for quota in self.plan.quotas
        )

    def tick(self) -> tuple[int, float, list[type]] | None:
        run_time = self.get_run_time()
        if run_time >= self.limit_s:
            logger.info("profile %s reached its time limit of %.0f s", self.plan.name, self.limit_s)
            return None
        if self.plan.ends_by_quota:
            if run_time >= self.plan.min_s and self.quotas_done():
                return None
            users = self._users(self.plan.peak_users)
            names = (*(q.user_class for q in self.plan.quotas), plans.LEARNER)
            return users, float(users), self._classes(names)
        for stage in self.plan.stages:
            if run_time < stage.until_s:
                return (
                    self._users(stage.learners),
                    stage.spawn_rate,
                    self._classes((plans.LEARNER,)),
                )
        return None


def _shape(plan: plans.Plan) -> type[PlanShape]:
    name = plan.name.capitalize()
    return type(name, (PlanShape,), {"plan": plan, "abstract": False, "__doc__": plan.description})


Quick = _shape(plans.PLANS["quick"])
Smoke = _shape(plans.PLANS["smoke"])
Capacity = _shape(plans.PLANS["capacity"])
Baseline = _shape(plans.PLANS["baseline"])
Stress = _shape(plans.PLANS["stress"])
Spike = _shape(plans.PLANS["spike"])
Soak = _shape(plans.PLANS["soak"])

SHAPES: dict[str, type[PlanShape]] = {
    shape.plan.name: shape for shape in (Quick, Smoke, Capacity, Baseline, Stress, Spike, Soak)
}
