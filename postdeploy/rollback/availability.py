"""Could users reach the app while it was being rolled back? A probe thread measures it.

From the moment the controller calls the driver until the release it put back serves (never
longer than the rollback's wait timeout), :class:`AvailabilityProbe` requests the health
endpoint and one key page about every ``interval_s`` and records what answered. A request is
*answered correctly* when the health endpoint says 200 ``healthy`` and the page answers 2xx;
anything else (refused, timed out, 5xx, unhealthy) is a miss.

The result (verdict.json ``rollback.availability``): requests sent, answered correctly, the
availability (answered / sent), the longest gap (from the first miss of a run of misses to the
next correct answer, or to the end), whether it met ``rollback.availability_objective``, and
the timeline of every request (bounded).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx

from postdeploy.contract import PATHS
from postdeploy.http import new_client

if TYPE_CHECKING:
    from postdeploy.config import Target

#: What each round requests: the health endpoint and one key page.
PROBE_PATHS = (PATHS.health, PATHS.page_home)
#: A probe request gives up after this long (a round is about a second).
REQUEST_TIMEOUT_S = 1.0
#: The shortest time between probe rounds: an edge restart can be a few tens of ms (nginx's
#: on this machine: about 40 ms), which probing every 50 ms missed about one time in eight.
MIN_INTERVAL_S = 0.01
#: Requests kept in the timeline; the counts cover every request.
MAX_TIMELINE = 1200


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclasses.dataclass
class Sample:
    at: str
    t_s: float
    path: str
    ok: bool
    status: int | None
    ms: float
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def answered_correctly(path: str, response: httpx.Response) -> bool:
    if path == PATHS.health:
        try:
            healthy = response.json().get("status") == "healthy"
        except (ValueError, AttributeError):
            healthy = False
        return response.status_code == 200 and healthy
    return response.is_success


def longest_gap(samples: list[Sample], end_t: float) -> float:
    """Seconds from the first miss of a run of misses to the next correct answer (or the end)."""
    gap = 0.0
    first_miss: float | None = None
    for sample in samples:
        if not sample.ok and first_miss is None:
            first_miss = sample.t_s
        elif sample.ok and first_miss is not None:
            gap = max(gap, sample.t_s - first_miss)
            first_miss = None
    if first_miss is not None:
        gap = max(gap, end_t - first_miss)
    return round(gap, 3)


class AvailabilityProbe:
    """A background thread probing ``target`` until :meth:`stop` (or ``max_s``)."""

    def __init__(
        self, target: Target, *, interval_s: float, max_s: float, objective: float
    ) -> None:
        self.target = target
        self.interval_s = max(interval_s, MIN_INTERVAL_S)
        self.max_s = max_s
        self.objective = objective
        self.samples: list[Sample] = []
        self.sent = 0
        self.answered = 0
        self.error = ""
        self._stop = threading.Event()
        self._started = 0.0
        self._ended = 0.0
        self._thread = threading.Thread(target=self._run, name="availability-probe", daemon=True)

    def start(self) -> AvailabilityProbe:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S * len(PROBE_PATHS) + 1.0)
        self._ended = time.monotonic()
        return self.result()

    def _run(self) -> None:
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=REQUEST_TIMEOUT_S)
        try:
            with new_client(self.target, timeout=timeout) as client:
                while not self._stop.is_set():
                    round_started = time.monotonic()
                    if round_started - self._started > self.max_s:
                        return
                    for path in PROBE_PATHS:
                        self._probe(client, path)
                    spent = time.monotonic() - round_started
                    self._stop.wait(max(self.interval_s - spent, 0.0))
        except Exception as exc:  # the harness's trouble is recorded, never raised
            self.error = f"{type(exc).__name__}: {exc}"

    def _probe(self, client: httpx.Client, path: str) -> None:
        at, started = _now(), time.monotonic()
        status: int | None = None
        error = ""
        try:
            response = client.get(path, headers={"Cache-Control": "no-cache"})
            status = response.status_code
            ok = answered_correctly(path, response)
        except httpx.HTTPError as exc:
            ok, error = False, type(exc).__name__
        self.sent += 1
        self.answered += ok
        if len(self.samples) < MAX_TIMELINE:
            self.samples.append(
                Sample(
                    at, round(started - self._started, 3), path, ok, status,
                    round((time.monotonic() - started) * 1000, 1), error,
                )
            )  # fmt: skip

    def result(self) -> dict[str, Any]:
        end_t = (self._ended or time.monotonic()) - self._started
        availability = round(self.answered / self.sent, 6) if self.sent else None
        met = availability is not None and availability >= self.objective
        return {
            "sent": self.sent,
            "answered": self.answered,
            "availability": availability,
            "objective": self.objective,
            "met": met,
            "longest_gap_s": longest_gap(self.samples, end_t),
            "duration_s": round(end_t, 3),
            "interval_s": self.interval_s,
            "paths": list(PROBE_PATHS),
            "error": self.error,
            "timeline": [s.to_dict() for s in self.samples],
        }
