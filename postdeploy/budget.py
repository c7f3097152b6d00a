"""The traffic budget: the harness's registrations planned within the target's declared limit.

A target allows so many registrations per client and window (``[targets.NAME.limits]``,
by default the Learning Assistant's shipped 30 per 60 s). Every registration the harness
sends through its HTTP client first takes a slot of a sliding window kept in a small file
in the state dir - shared by the run's processes (xdist workers) and by back-to-back runs,
as the target's own window is - and waits, never longer than one window, when the window
is full. A registration refused as invalid (a 4xx other than 409 and 429) gives its slot
back: the target validates before it counts. Registrations the harness cannot pace (the
browser's form, Locust's account pool) are reserved for: ``RESERVED_FOR_UNPACED`` of the
limit is never taken here.
"""

from __future__ import annotations

import fcntl
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: Registrations per window left to the browser journeys and Locust, which are not paced.
RESERVED_FOR_UNPACED = 8
#: Margin added to a wait, for clock granularity and the target's own rounding.
WAIT_MARGIN_S = 0.5
#: Never fewer paced registrations per window than this (a tiny declared limit still works).
MIN_PACED = 1


@dataclass(frozen=True)
class RegistrationBudget:
    """A sliding window of the harness's registrations to one target."""

    path: Path
    limit: int
    window_s: float

    @classmethod
    def for_target(
        cls, state_dir: Path, name: str, limit: int, window_s: float
    ) -> RegistrationBudget:
        paced = max(MIN_PACED, int(limit) - RESERVED_FOR_UNPACED)
        return cls(state_dir / f"budget-{name}-registrations.json", paced, float(window_s))

    def acquire(self) -> float:
        """Take a slot, waiting while the window is full; the slot (its time stamp)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            stamp, wait = self._try_take()
            if wait <= 0:
                return stamp
            time.sleep(wait)

    def release(self, stamp: float) -> None:
        """Give a slot back: the request never reached the target's limiter (refused as
        invalid first), so it spent nothing."""
        with self.path.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            stamps = self._read(handle)
            if stamp in stamps:
                stamps.remove(stamp)
                self._write(handle, stamps)

    @staticmethod
    def _read(handle: IO[str]) -> list[float]:
        handle.seek(0)
        try:
            return [float(s) for s in json.loads(handle.read() or "[]")]
        except (ValueError, TypeError):
            return []

    @staticmethod
    def _write(handle: IO[str], stamps: list[float]) -> None:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(stamps))

    def _try_take(self) -> tuple[float, float]:
        with self.path.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            now = time.time()
            stamps = sorted(s for s in self._read(handle) if s > now - self.window_s)
            if len(stamps) >= self.limit:
                return now, stamps[0] + self.window_s - now + WAIT_MARGIN_S
            stamps.append(now)
            self._write(handle, stamps)
            return now, 0.0
