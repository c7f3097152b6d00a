"""Running a platform's command-line tool (flyctl, a user's rollback command) for a driver.

Bounded in time, no shell, no stdin; failures to run are driver errors that say what to do,
and quoted output is redacted.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from postdeploy.redact import redact_text
from postdeploy.rollback.base import DriverError, DriverUnavailable

#: Lines of a failed command's stderr quoted in the error.
STDERR_TAIL_LINES = 8
STDERR_TAIL_CHARS = 1200


@dataclass(frozen=True)
class Finished:
    """A command that ran to its end (any exit code)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def stderr_tail(self, secrets: Sequence[str] = ()) -> str:
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        tail = "\n".join(lines[-STDERR_TAIL_LINES:])[-STDERR_TAIL_CHARS:]
        return redact_text(tail, secrets)


def run_tool(
    argv: Sequence[str],
    *,
    timeout_s: float,
    env: Mapping[str, str],
    what: str,
    secrets: Sequence[str] = (),
) -> Finished:
    """Run ``argv`` (no shell, no stdin) within ``timeout_s``; a failure to run is a DriverError.

    A non-zero exit is returned, not raised: callers know what the tool's errors mean.
    """
    try:
        done = subprocess.run(
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except FileNotFoundError:
        raise DriverUnavailable(
            f"{what}: {argv[0]!r} was not found; install it or give its full path"
        ) from None
    except PermissionError:
        raise DriverUnavailable(f"{what}: {argv[0]!r} is not executable; chmod +x it") from None
    except subprocess.TimeoutExpired:
        raise DriverError(
            f"{what}: `{shlex.join(argv[:3])} ...` did not finish within {timeout_s:g} s and "
            "was stopped; the platform may be slow - look at it, then retry"
        ) from None
    return Finished(tuple(argv), done.returncode, done.stdout, done.stderr)


def find_executable(name: str) -> str | None:
    """``name`` on PATH, or ``name`` itself when it is a path to an executable file."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)
