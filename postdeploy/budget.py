"""The traffic budget: the harness's registrations and logins planned within the target's limits.

A target allows so many registrations per client and window, and so many login attempts per
client, account and window (``[targets.NAME.limits]``, by default the Learning Assistant's
shipped 30 and 10 per 60 s). Every registration and login the harness sends through its HTTP
client first takes a slot of a sliding window kept in a small file in the state dir - shared
by the run's processes (xdist workers) and by back-to-back runs, as the target's own window
is - and waits, never longer than one window, when the window is full. Logins are counted per
account (a key: a digest of the e-mail address, never the address). A request refused as
invalid (a 4xx other than 409 and 429) gives its slot back: the target validates before it
counts. Registrations the harness cannot pace (the browser's form, Locust's account pool) are
reserved for: ``RESERVED_FOR_UNPACED`` of the limit is never taken here, and one login per
account and window is left to them likewise.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: Registrations per window left to the browser journeys and Locust, which are not paced.
RESERVED_FOR_UNPACED = 8
#: Logins per account and window left to the unpaced (a browser logging in as a pooled user).
RESERVED_LOGINS = 1
#: Margin added to a wait, for clock granularity and the target's own rounding.
WAIT_MARGIN_S = 0.5
#: Never fewer paced requests per window than this (a tiny declared limit still works).
MIN_PACED = 1
#: The key of a window counted per client only (registrations).
WHOLE_CLIENT = ""


def account_key(email: str) -> str:
    """The key a login is counted under: a digest, so no address is written to the state dir."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WindowBudget:
    """Sliding windows of the harness's requests of one kind to one target, one per key."""

    path: Path
    limit: int
    window_s: float

    @classmethod
    def registrations(cls, state_dir: Path, name: str, limit: int, window_s: float) -> WindowBudget:
        paced = max(MIN_PACED, int(limit) - RESERVED_FOR_UNPACED)
        return cls(state_dir / f"budget-{name}-registrations.json", paced, float(window_s))

    @classmethod
    def logins(cls, state_dir: Path, name: str, limit: int, window_s: float) -> WindowBudget:
        paced = max(MIN_PACED, int(limit) - RESERVED_LOGINS)
        return cls(state_dir / f"budget-{name}-logins.json", paced, float(window_s))

    def acquire(self, key: str = WHOLE_CLIENT) -> float:
        """Take a slot, waiting while the window is full; the slot (its time stamp)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            stamp, wait = self._try_take(key)
            if wait <= 0:
                return stamp
            time.sleep(wait)

    def release(self, stamp: float, key: str = WHOLE_CLIENT) -> None:
        """Give a slot back: the request never reached the target's limiter (refused as
        invalid first), so it spent nothing."""
        with self._locked() as handle:
            windows = self._read(handle)
            if stamp in windows.get(key, []):
                windows[key].remove(stamp)
                self._write(handle, windows)

    def used(self, key: str = WHOLE_CLIENT) -> int:
        """Slots of ``key`` taken in the current window (what the account pool compares)."""
        if not self.path.exists():
            return 0
        with self._locked() as handle:
            now = time.time()
            return sum(1 for s in self._read(handle).get(key, []) if s > now - self.window_s)

    def _locked(self) -> IO[str]:
        handle = self.path.open("a+")
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        return handle

    @staticmethod
    def _read(handle: IO[str]) -> dict[str, list[float]]:
        handle.seek(0)
        try:
            data = json.loads(handle.read() or "{}")
            if isinstance(data, list):  # the registrations-only format of earlier versions
                data = {WHOLE_CLIENT: data}
            return {str(k): [float(s) for s in v] for k, v in dict(data).items()}
        except (ValueError, TypeError, AttributeError):
            return {}

    @staticmethod
    def _write(handle: IO[str], windows: dict[str, list[float]]) -> None:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({k: v for k, v in windows.items() if v}))

    def _try_take(self, key: str) -> tuple[float, float]:
        with self._locked() as handle:
            now = time.time()
            windows = {
                k: sorted(s for s in v if s > now - self.window_s)
                for k, v in self._read(handle).items()
            }
            stamps = windows.setdefault(key, [])
            if len(stamps) >= self.limit:
                self._write(handle, windows)
                return now, stamps[0] + self.window_s - now + WAIT_MARGIN_S
            stamps.append(now)
            self._write(handle, windows)
            return now, 0.0
