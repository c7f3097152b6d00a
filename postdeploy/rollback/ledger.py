"""The rollback ledger: what makes rollbacks safe across runs.

Two runs can want the same rollback at once (the nightly validation and a CI gate), and a
rollback can be followed by a failing gate on the release it put back ("the stable release is
failing too"). The ledger answers both, per target:

* a **lock** (``flock`` on ``<target>.lock``): only the run holding it may roll the target
  back; the other one records that it stood aside;
* a **history** (``<target>.jsonl``, append-only): when the target was last rolled back, so a
  second rollback inside the target's ``rollback.cooldown_s`` escalates instead of looping.

It lives in ``$POSTDEPLOY_STATE_DIR/rollback-ledger`` (default ``.postdeploy/``). Runs that
should see each other must share that directory: on ephemeral CI runners, put it on
persistent storage (a cache or a mounted volume).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LEDGER_DIR = "rollback-ledger"


def default_ledger_dir() -> Path:
    from postdeploy import paths

    return paths.state_dir() / LEDGER_DIR


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


class Ledger:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_ledger_dir()

    def _path(self, target: str, suffix: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / f"{_safe(target)}{suffix}"

    @contextlib.contextmanager
    def hold(self, target: str) -> Iterator[bool]:
        """Try to take the target's rollback lock without waiting; yields whether it did."""
        with open(self._path(target, ".lock"), "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def last_rollback(self, target: str) -> dict[str, Any] | None:
        path = self._path(target, ".jsonl")
        if not path.exists():
            return None
        last = None
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                last = json.loads(line)
        return last

    def seconds_since_last(self, target: str) -> tuple[float, dict[str, Any]] | None:
        last = self.last_rollback(target)
        if last is None or "ts" not in last:
            return None
        when = dt.datetime.fromisoformat(last["ts"])
        return (dt.datetime.now(dt.UTC) - when).total_seconds(), last

    def record(self, target: str, **entry: Any) -> None:
        line = {"ts": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **entry}
        with open(self._path(target, ".jsonl"), "a", encoding="utf-8") as history:
            history.write(json.dumps(line, default=str) + "\n")
