"""The run history: every run's canary samples, per target and load profile, to compare with.

Layout (``--history-dir``, default ``<state dir>/history``; CI persists the folder)::

    <target>/<profile>/<run id>.json.gz      one run: the samples of every key endpoint
    <target>/<profile>/<run id>.invalidated  present when the run must never be a baseline

A stored run keeps the samples themselves (latencies in ms, requests, errors), gzip-compressed,
so a later run re-runs the full tests against them rather than comparing summaries.
``--compare-with previous:K`` pools the last K *usable* runs of the same target, profile and
harness version: not invalidated, and not failed themselves. A run made during an incident is
excluded with ``postdeploy history invalidate RUN``.

The folder stays bounded: recording a run prunes its target and profile to the newest ``keep``
runs (``[canary] history_keep``), their invalidation markers with them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from postdeploy import paths
from postdeploy.performance.judge import ArmSamples

HISTORY_SUBDIR = "history"
SUFFIX = ".json.gz"
INVALIDATED_SUFFIX = ".invalidated"
FORMAT_VERSION = 2
#: How the stored samples were sent (``canary.collect``); runs stored before format 2 went
#: endpoint by endpoint, a shape that is not comparable (see ``History.baseline``).
SAMPLING = "round-robin"
BLOCKS = "endpoint by endpoint"
UNKNOWN_VERSION = "0+unknown"
#: Outcomes a stored run can have; a ``failed`` run is never a baseline.
PASSED, FAILED, NOT_JUDGED, INCONCLUSIVE = "passed", "failed", "not judged", "inconclusive"
USABLE_OUTCOMES = frozenset({PASSED, NOT_JUDGED})
LATENCY_DIGITS = 3
#: Runs kept per target and profile when the caller does not say.
DEFAULT_KEEP = 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


class HistoryError(Exception):
    """The history folder or a request about it is wrong; the message says how to fix it."""


def default_dir() -> Path:
    return paths.state_dir() / HISTORY_SUBDIR


def harness_version() -> str:
    """The installed postdeploy version: runs of another harness version are not compared."""
    try:
        return metadata.version("postdeploy")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def _safe(name: str) -> str:
    return _SAFE_NAME.sub("_", name) or "_"


@dataclass(frozen=True)
class StoredRun:
    """One run in the history (its header; the samples are read on demand)."""

    run_id: str
    target: str
    profile: str
    harness_version: str
    recorded_at: str
    outcome: str
    endpoints: int
    path: Path
    invalidated: str | None = None
    #: requests per key endpoint: runs of another size are another shape (see ``baseline``)
    per_endpoint: int = 0
    #: how the samples were sent: another order is another shape (see ``baseline``)
    sampling: str = SAMPLING

    @property
    def usable(self) -> bool:
        return self.invalidated is None and self.outcome in USABLE_OUTCOMES

    def samples(self) -> dict[str, ArmSamples]:
        data = _read(self.path)
        return {
            name: ArmSamples(
                tuple(float(x) for x in entry["latencies_ms"]),
                int(entry["requests"]),
                int(entry["errors"]),
            )
            for name, entry in data["endpoints"].items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "target": self.target,
            "profile": self.profile,
            "harness_version": self.harness_version,
            "recorded_at": self.recorded_at,
            "outcome": self.outcome,
            "endpoints": self.endpoints,
            "per_endpoint": self.per_endpoint,
            "sampling": self.sampling,
            "invalidated": self.invalidated,
        }

    def line(self) -> str:
        state = f"INVALIDATED ({self.invalidated})" if self.invalidated else self.outcome
        return (
            f"{self.run_id:<24} {self.target:<12} {self.profile:<10} {self.harness_version:<10} "
            f"{self.recorded_at:<26} {state}"
        )


def _read(path: Path) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as file:
            data: dict[str, Any] = json.load(file)
    except (OSError, ValueError) as exc:
        raise HistoryError(
            f"{path} is not a readable history entry ({exc}); move it away"
        ) from None
    return data


class History:
    """The history folder."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_dir()

    def _folder(self, target: str, profile: str) -> Path:
        return self.root / _safe(target) / _safe(profile)

    def record(
        self,
        target: str,
        profile: str,
        run_id: str,
        samples: dict[str, ArmSamples],
        outcome: str,
        keep: int = DEFAULT_KEEP,
    ) -> Path:
        """Store one run's samples (replacing an entry of the same run id), then prune the
        target's and profile's runs to the newest ``keep``."""
        folder = self._folder(target, profile)
        folder.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FORMAT_VERSION,
            "run_id": run_id,
            "target": target,
            "profile": profile,
            "harness_version": harness_version(),
            "sampling": SAMPLING,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "outcome": outcome,
            "endpoints": {
                name: {
                    "latencies_ms": [round(x, LATENCY_DIGITS) for x in arm.latencies_ms],
                    "requests": arm.requests,
                    "errors": arm.errors,
                }
                for name, arm in samples.items()
            },
        }
        path = folder / f"{_safe(run_id)}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as file:
            json.dump(document, file)
        tmp.replace(path)
        self.prune(target, profile, keep)
        return path

    def prune(self, target: str, profile: str, keep: int) -> list[StoredRun]:
        """Delete all but the newest ``keep`` runs of ``target`` and ``profile`` (with their
        invalidation markers); returns the deleted runs."""
        if keep < 1:
            raise HistoryError(f"the history must keep at least 1 run per target, not {keep}")
        gone = self.runs(target, profile)[keep:]
        for run in gone:
            run.path.unlink(missing_ok=True)
            _marker(run.path).unlink(missing_ok=True)
        return gone

    def runs(self, target: str | None = None, profile: str | None = None) -> list[StoredRun]:
        """Stored runs, newest first."""
        if not self.root.is_dir():
            return []
        pattern = f"{_safe(target) if target else '*'}/{_safe(profile) if profile else '*'}/*"
        found = []
        for path in self.root.glob(pattern + SUFFIX):
            data = _read(path)
            marker = _marker(path)
            found.append(
                StoredRun(
                    run_id=str(data["run_id"]),
                    target=str(data["target"]),
                    profile=str(data["profile"]),
                    harness_version=str(data["harness_version"]),
                    recorded_at=str(data["recorded_at"]),
                    outcome=str(data["outcome"]),
                    endpoints=len(data["endpoints"]),
                    per_endpoint=max(
                        (int(e["requests"]) for e in data["endpoints"].values()), default=0
                    ),
                    sampling=str(data.get("sampling", BLOCKS)),
                    path=path,
                    invalidated=marker.read_text(encoding="utf-8").strip() or "invalidated"
                    if marker.exists()
                    else None,
                )
            )
        return sorted(found, key=lambda run: run.recorded_at, reverse=True)

    def find(self, run_id: str) -> list[StoredRun]:
        matches = [run for run in self.runs() if run.run_id == run_id]
        if not matches:
            raise HistoryError(
                f"no stored run {run_id!r} in {self.root}; `postdeploy history list` shows them"
            )
        return matches

    def invalidate(self, run_id: str, reason: str) -> list[StoredRun]:
        """Exclude a run from every future comparison (the samples are kept)."""
        matches = self.find(run_id)
        for run in matches:
            _marker(run.path).write_text(reason.strip() or "invalidated", encoding="utf-8")
        return self.find(run_id)

    def baseline(
        self, target: str, profile: str, k: int, exclude_run: str = "", per_endpoint: int = 0
    ) -> list[StoredRun]:
        """The last ``k`` usable runs of this target, profile, harness version and sampling
        order (or fewer), and of ``per_endpoint`` requests per key endpoint when given.

        Size and order are part of a run's shape. Every recorded learning session grows the
        data the reading endpoints go through, so a run of 1,000 rounds is slower on those
        than one of 200 on the same release and machine. Runs stored before format 2 went
        endpoint by endpoint, where a burst of the host's load lands on one endpoint's block."""
        version = harness_version()
        usable = [
            run
            for run in self.runs(target, profile)
            if run.usable
            and run.harness_version == version
            and run.sampling == SAMPLING
            and run.run_id != exclude_run
            and (not per_endpoint or run.per_endpoint == per_endpoint)
        ]
        return usable[:k]


def _marker(path: Path) -> Path:
    """The invalidation marker of the stored run at ``path``."""
    return path.with_name(path.name[: -len(SUFFIX)] + INVALIDATED_SUFFIX)
