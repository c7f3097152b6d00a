"""Small operating-system helpers the engine shares, one per job.

A bounded file lock, importing a file, whether a process is alive, a free loopback port, and
work done in threads whose errors belong to whoever takes its results.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")
Item = TypeVar("Item")

#: How often a waiting lock is tried again.
LOCK_POLL_S = 0.05
LOOPBACK = "127.0.0.1"
#: The process state letter /proc/PID/stat gives a zombie (exited, not yet reaped).
ZOMBIE_STATE = "Z"


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


def process_alive(pid: int, marker: bytes | None = None) -> bool:
    """Whether process ``pid`` runs (a zombie does not).

    With ``marker``, only a process whose command line contains it counts, so a pid the
    system reused for something else is not mistaken for the process that was started.
    """
    if pid <= 0:
        return False
    if marker is not None:
        try:  # a zombie's command line is empty
            return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc to ask: the signal reached it
    return stat.rsplit(")", 1)[1].split()[0] != ZOMBIE_STATE


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on now (the system picks it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether ``port`` on ``host`` can be bound now."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def outcome(work: Callable[[], T]) -> T | Exception:
    """``work()``, or the exception it raised: for work done in another thread, whose error
    belongs to the caller that takes the result (it raises it where it is needed)."""
    try:
        return work()
    except Exception as exc:
        return exc


def outcomes(
    work: Callable[[Item], T], items: Sequence[Item], in_flight: int, name: str
) -> list[T | Exception]:
    """``work(item)`` for every item, at most ``in_flight`` at once (threads named ``name``):
    each result, or the exception it raised, in the items' order."""
    with ThreadPoolExecutor(max(1, min(in_flight, len(items))), name) as pool:
        return list(pool.map(lambda item: outcome(lambda: work(item)), items))
