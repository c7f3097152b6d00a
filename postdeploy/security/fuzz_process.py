"""schemathesis in a process of its own: :func:`fuzz_in_process`.

schemathesis and Hypothesis spend most of their time generating cases, in Python: run in a
thread of the harness, beside the checks that run meanwhile, they held its interpreter lock
for about 1.6 s of a gating run. Here they run in a child process (``python -m
postdeploy.security.fuzz_process``), on a core of its own where there is one, with the same
target, document, plan and bounds, through the same HTTP client (:func:`postdeploy.http.
new_client`, whose registration budget is shared through the state dir as xdist workers share
it). What the child finds comes back as it happens, as pickles on its stdout (its own prints
go to its stderr): each account a registration created (``on_account``, so the caller deletes
it even if the child dies afterwards), then the report - or the exception that stopped it,
raised again here, so a check meets the same error as if the fuzzing had run in its thread.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from postdeploy.security.fuzz import FuzzPlan, FuzzReport, fuzz

if TYPE_CHECKING:
    from pathlib import Path

    from postdeploy.config import Target

#: Most of the child's stderr quoted when it ends without a report.
STDERR_TAIL_CHARS = 2000


class FuzzProcessError(Exception):
    """The child process ended without a report (killed, crashed, or out of time)."""


def _send(out: IO[bytes], *message: Any) -> None:
    pickle.dump(message, out)
    out.flush()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives a round trip through pickle, else a plain error that says it."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object, never left this process
    except Exception:
        return FuzzProcessError(f"{type(exc).__name__}: {exc}")
    return exc


def fuzz_in_process(
    target: Target,
    document: dict[str, Any],
    plan: FuzzPlan,
    *,
    examples: int,
    on_account: Callable[[str, str], None],
    timeout_s: float,
    cache_dir: Path | None = None,
) -> FuzzReport:
    """:func:`postdeploy.security.fuzz.fuzz` against ``target``, run by a child process; at
    most ``timeout_s`` seconds, then the child is killed and the error says so."""
    request = pickle.dumps((target, document, plan, examples, cache_dir))
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        killer = threading.Timer(timeout_s, child.kill)
        killer.daemon = True
        killer.start()
        outcome: tuple[Any, ...] | None = None
        try:
            assert child.stdin is not None
            assert child.stdout is not None
            with contextlib.suppress(BrokenPipeError):
                child.stdin.write(request)
                child.stdin.close()
            while True:
                try:
                    message = pickle.load(child.stdout)  # noqa: S301 - our own child's pipe
                except EOFError:
                    break
                if message[0] == "account":
                    on_account(message[1], message[2])
                else:
                    outcome = message
        finally:
            killer.cancel()
            if child.poll() is None:
                child.kill()
            child.wait()
        if outcome is None:
            errors.seek(0)
            tail = errors.read().decode("utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
            ended = "was stopped after" if child.returncode < 0 else "ended within"
            raise FuzzProcessError(
                f"the fuzzing process (schemathesis) {ended} {timeout_s:g} s without a "
                f"report (exit status {child.returncode}); its last output:\n{tail}"
            )
    if outcome[0] == "error":
        raise outcome[1]
    report: FuzzReport = outcome[1]
    return report


def main() -> int:
    # The messages go to the real stdout; anything else printed there goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    from postdeploy.http import new_client

    # only ever started by fuzz_in_process, whose pipe this is
    target, document, plan, examples, cache_dir = pickle.load(sys.stdin.buffer)  # noqa: S301
    try:
        with new_client(target) as client:
            report = fuzz(
                client,
                document,
                plan,
                examples=examples,
                on_account=lambda email, password: _send(out, "account", email, password),
                cache_dir=cache_dir,
            )
    except Exception as exc:
        _send(out, "error", _portable(exc))
    else:
        _send(out, "report", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
