"""Slow work a run will certainly need, started early in the background and awaited where used.

Much of a run's time is waiting: on a TLS scan, on a Prometheus to start and scrape, on the
hostile-input corpus's answers. When the ``target`` fixture has the target ready, postdeploy
fires ``pytest_postdeploy_start_early`` and each suite starts, in a background thread, the
work its *selected* checks need (nothing else); the session fixture that needs the result
then takes it (:meth:`EarlyStarts.take`), waiting if it is not done, and running it itself if
nothing started it. An exception raised by the work is raised by ``take``, in the check that
needs it, exactly as if the fixture had done the work itself: the verdicts do not change.

Checks marked ``alone`` (the load test, the web vitals, the response times) measure the
target and must not share it: before each of them every early start that sends the target
requests is awaited (:meth:`EarlyStarts.wait_all`). Work started ``quiet`` sends it none of
its own - the local Prometheus, whose start-up holds its first scrape back about 5 s, only
scrapes it, as it goes on doing all run - and is awaited only by the check that takes it.
Early starts happen only in a run without xdist workers, where each process would otherwise
start the same work again.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

#: Background threads: enough for every kind of early work to run at once.
MAX_EARLY_THREADS = 4
EARLY_STARTS_KEY = pytest.StashKey["EarlyStarts"]()


@dataclass
class _Job:
    future: Future[Any]
    #: undoes the work's result when no fixture took it (a started server is stopped)
    discard: Callable[[Any], None] | None = None
    #: sends the target no requests of its own: an ``alone`` check need not wait for it
    quiet: bool = False


@dataclass
class EarlyStarts:
    """The run's early starts, by key (e.g. ``"tls:local"``)."""

    enabled: bool = True
    _jobs: dict[str, _Job] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = None

    def start(
        self,
        key: str,
        work: Callable[[], T],
        discard: Callable[[T], None] | None = None,
        *,
        quiet: bool = False,
    ) -> Future[T] | None:
        """Run ``work`` in the background, once per key (a second start is ignored); its
        future, for work that builds on it (None when early starts are off). ``quiet``: the
        work sends the target no requests, so checks that run alone do not wait for it."""
        if not self.enabled:
            return None
        with self._lock:
            if key not in self._jobs:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(MAX_EARLY_THREADS, "postdeploy-early")
                self._jobs[key] = _Job(self._pool.submit(work), discard, quiet)
            return self._jobs[key].future

    def take(self, key: str, work: Callable[[], T]) -> T:
        """The early result of ``key`` (waiting for it), or ``work()`` when nothing started it.
        Taken once: the caller now owns the result."""
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is None:
            return work()
        return job.future.result()

    def wait_all(self) -> None:
        """Wait until no early work that sends the target requests is running (its results
        stay to be taken)."""
        with self._lock:
            futures = [job.future for job in self._jobs.values() if not job.quiet]
        for future in futures:
            with contextlib.suppress(Exception):  # raised again to the check that takes it
                future.result()

    def close(self) -> None:
        """At the end of the session: wait for what still runs and undo what nobody took."""
        with self._lock:
            jobs, self._jobs = list(self._jobs.values()), {}
        for job in jobs:
            try:
                result = job.future.result()
            except Exception:  # noqa: S112 - nobody needed it; its error concerns no check
                continue
            if job.discard is not None:
                with contextlib.suppress(Exception):
                    job.discard(result)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def early_starts(config: pytest.Config) -> EarlyStarts:
    """The run's early starts (disabled ones in an xdist worker, or outside a validation run)."""
    starts = config.stash.get(EARLY_STARTS_KEY, None)
    if starts is None:
        starts = EarlyStarts(enabled=False)
        config.stash[EARLY_STARTS_KEY] = starts
    return starts


def needed(session: pytest.Session, fixture: str) -> bool:
    """Whether a selected check uses ``fixture`` (directly or through its other fixtures)."""
    return any(fixture in getattr(item, "fixturenames", ()) for item in session.items)
