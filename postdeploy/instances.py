"""Checks that run against every instance of a deployment and name the one that failed.

A defect can live on one instance of several (a bad machine, a partial rollout). Where the
platform can route a request to one instance - its driver's :meth:`instances` give the
headers, as Fly.io's ``fly-force-instance-id`` does - a per-instance check runs once per
instance and its failure names the instance. Where it cannot, the check is repeated
``instance_repeats`` times through the target's URL, so that a load balancer spreads the
requests over the instances: with one bad instance of N and a random balancer the check misses
it with probability ((N-1)/N)^repeats (2 instances, 6 repeats: 1.6 %); a round-robin balancer
reaches every instance once in N consecutive requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from postdeploy.sysutil import outcome, outcomes

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.rollback.base import Instance


@dataclass(frozen=True)
class Route:
    """One way a check reaches the deployment: one instance, or one more try through the URL."""

    label: str
    headers: dict[str, str] = field(default_factory=dict)
    instance: Instance | None = None


def routes(target: Target, instances: Sequence[Instance]) -> list[Route]:
    """Every instance when they can be addressed; else ``instance_repeats`` tries."""
    addressable = [i for i in instances if i.addressable]
    if addressable:
        return [Route(f"instance {i.id}", dict(i.headers), i) for i in addressable]
    if len(instances) == 1:
        return [Route(f"{target.url} (its one instance)", {}, instances[0])]
    repeats = max(int(target.instance_repeats), 1)
    return [Route(f"try {n} of {repeats} through {target.url}") for n in range(1, repeats + 1)]


def check_each(routes: Sequence[Route], check: Callable[[Route], None], in_flight: int = 1) -> None:
    """Run ``check`` once per route; one failure naming every route that failed, and why.

    ``in_flight`` > 1 runs that many routes at once: for checks that only read, so that no
    route's check can change what another's sees (a check that writes and reads back, or
    counts, keeps the default of one at a time). Any other exception than a failed assertion
    is raised as it is - the first in route order, as one at a time would have.
    """
    failures = []
    for route, result in zip(routes, _outcomes(routes, check, in_flight), strict=True):
        if isinstance(result, AssertionError):
            failures.append(f"{route.label}: {result}")
        elif result is not None:
            raise result
    if failures:
        healthy = len(routes) - len(failures)
        raise AssertionError(
            f"failed on {len(failures)} of {len(routes)} ({healthy} passed) - "
            + " | ".join(failures)
        )


def _outcomes(
    routes: Sequence[Route], check: Callable[[Route], None], in_flight: int
) -> Iterator[Exception | None]:
    """Each route's outcome in route order: None (passed) or what the check raised. One at a
    time, an exception other than a failed assertion ends the checks there."""
    if in_flight > 1 and len(routes) > 1:
        yield from outcomes(check, routes, in_flight, "per-instance")
        return
    for route in routes:
        result = outcome(partial(check, route))
        yield result
        if result is not None and not isinstance(result, AssertionError):
            return


def list_instances(target: Target) -> list[Instance]:
    """The target's instances from its platform driver; none when the driver cannot tell.

    A platform that cannot list instances is not a failure of the target: the checks then
    fall back to repetition through the URL.
    """
    from postdeploy.rollback import DriverError, driver_for

    try:
        return list(driver_for(target).instances())
    except DriverError:
        return []
