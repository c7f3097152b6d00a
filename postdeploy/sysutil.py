"""Small operating-system helpers the engine shares: a bounded file lock, importing a file."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

#: How often a waiting lock is tried again.
LOCK_POLL_S = 0.05


class LockTimeout(Exception):
    """The lock was held by someone else for longer than the caller would wait."""


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout_s: float, poll_s: float = LOCK_POLL_S) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, waiting at most ``timeout_s`` for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{path} is held for more than {timeout_s:.0f} s") from None
                time.sleep(poll_s)
        yield


def import_file(path: Path, name: str) -> ModuleType | None:
    """Import the Python file ``path`` as module ``name``; None when it does not exist."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None or not path.exists():
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module
