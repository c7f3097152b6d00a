"""Waiting for a rollout: every instance reports the expected version, several probes in a row.

A release rolls out instance by instance, so for a while two versions answer behind one URL.
With ``--expect-version`` the run first waits (at most the target's ``rollout_timeout_s``)
until every instance reports that version in ``rollout_stable_probes`` consecutive probes.

Mixed versions mean "still rolling out" while the platform itself says a rollout is under way
(its instances run different releases, or they changed since the last probe). When the
platform says every instance runs one release and yet an instance reports another version,
nothing is rolling out any more: that instance is wrong, and the wait ends at once. Where the
platform lists no instances, only the timeout ends the wait. The outcome says what was seen:
each instance's version and for how long it reported it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from postdeploy.contract import PATHS

if TYPE_CHECKING:
    from postdeploy.instances import Route
    from postdeploy.rollback.base import Instance

#: Time between two rounds of probes.
POLL_INTERVAL_S = 0.5

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class Seen:
    """What one route reported, and since when (clock time) it has reported it."""

    version: str
    since: float


@dataclass
class RolloutResult:
    done: bool
    waited_s: float
    message: str
    seen: dict[str, str] = field(default_factory=dict)


def probe_version(client: httpx.Client, headers: dict[str, str]) -> str:
    """The version one health answer reports, or what went wrong, in brackets."""
    try:
        response = client.get(PATHS.health, headers=headers)
    except httpx.TransportError as exc:
        return f"(no answer: {type(exc).__name__})"
    try:
        version = response.json().get("version")
    except (ValueError, AttributeError):
        version = None
    if not isinstance(version, str) or not version:
        return f"(HTTP {response.status_code}, no version)"
    return version


def _platform_settled(before: Sequence[Instance] | None, now: Sequence[Instance]) -> bool:
    """The platform lists instances, all on one release, the same ones as last time."""
    if not now or before is None:
        return False
    one_release = len({i.version for i in now}) == 1
    unchanged = [(i.id, i.version) for i in before] == [(i.id, i.version) for i in now]
    return one_release and unchanged


def _describe(seen: dict[str, Seen], now: float) -> str:
    return ", ".join(
        f"{label} reports {s.version!r} (for {now - s.since:.0f} s)" for label, s in seen.items()
    )


def wait_for_rollout(
    client: httpx.Client,
    expected: str,
    list_instances: Callable[[], Sequence[Instance]],
    make_routes: Callable[[Sequence[Instance]], Sequence[Route]],
    *,
    timeout_s: float,
    stable_probes: int,
    poll_s: float = POLL_INTERVAL_S,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> RolloutResult:
    """Until every instance reports ``expected`` ``stable_probes`` times in a row."""
    started = clock()
    seen: dict[str, Seen] = {}
    streak = 0
    settled_rounds = 0
    previous: Sequence[Instance] | None = None
    while True:
        instances = list_instances()
        now = clock()
        current = {r.label: probe_version(client, r.headers) for r in make_routes(instances)}
        seen = {
            label: seen[label] if label in seen and seen[label].version == v else Seen(v, now)
            for label, v in current.items()
        }
        versions = {label: s.version for label, s in seen.items()}
        if all(v == expected for v in current.values()):
            streak += 1
            if streak >= stable_probes:
                return RolloutResult(True, now - started, "", versions)
        else:
            streak = 0
        settled_rounds = settled_rounds + 1 if _platform_settled(previous, instances) else 0
        previous = instances
        wrong = [label for label, v in current.items() if v != expected]
        if wrong and settled_rounds >= stable_probes:
            return RolloutResult(
                False,
                now - started,
                f"{', '.join(wrong)} do(es) not report version {expected!r} although the "
                f"platform has finished rolling out (every instance on one release, unchanged "
                f"for {stable_probes} probes): {_describe(seen, now)}",
                versions,
            )
        if now - started >= timeout_s:
            mixed = "versions still mixed: " if len(set(current.values())) > 1 else ""
            return RolloutResult(
                False,
                now - started,
                f"{mixed}the rollout to {expected!r} did not finish within {timeout_s:g} s "
                f"(rollout_timeout_s): {_describe(seen, now)}",
                versions,
            )
        sleep(poll_s)
