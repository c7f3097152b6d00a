"""The part of ECS that moto does not play: the scheduler that carries out a deployment.

moto (``mock_aws``) keeps ECS clusters, services and task definitions, but ``update_service``
only records the new task definition. :class:`EcsScheduler` does the rest on moto's backend,
one step per :meth:`tick`, the way ECS does it: a new PRIMARY deployment for the new task
definition (the old one becomes ACTIVE), then its tasks running and ``rolloutState``
COMPLETED (the old one drained).
"""

from __future__ import annotations

from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends


class EcsScheduler:
    def __init__(self, region: str, *, fail: bool = False) -> None:
        self.region = region
        self.fail = fail
        self.ticks = 0

    def _services(self) -> list[Any]:
        return list(ecs_backends[DEFAULT_ACCOUNT_ID][self.region].services.values())

    def settle(self) -> None:
        """Finish every deployment at once (a service that is steady before a test)."""
        self.tick()
        self.tick()

    def tick(self) -> None:
        self.ticks += 1
        for service in self._services():
            primary = service.deployments[0]
            if primary["taskDefinition"] != service.task_definition:
                primary["status"] = "ACTIVE"
                service.deployments.insert(0, {
                    **primary, "id": f"ecs-svc/{self.ticks:012d}", "status": "PRIMARY",
                    "taskDefinition": service.task_definition, "runningCount": 0,
                    "pendingCount": service.desired_count, "rolloutState": "IN_PROGRESS",
                    "rolloutStateReason": "ECS deployment in progress.",
                })  # fmt: skip
            elif primary["rolloutState"] == "IN_PROGRESS":
                if self.fail:
                    primary["rolloutState"] = "FAILED"
                    primary["rolloutStateReason"] = "tasks failed to start (stand-in)"
                    continue
                primary.update(
                    runningCount=service.desired_count, pendingCount=0, rolloutState="COMPLETED",
                    rolloutStateReason="ECS deployment completed.",
                )  # fmt: skip
                service.deployments[1:] = []
                service.running_count, service.pending_count = service.desired_count, 0
