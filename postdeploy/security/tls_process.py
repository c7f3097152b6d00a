"""The run's TLS scan in a process of its own: :func:`cached_scan_in_process`.

sslyze's import (about 0.25 s of CPU) and its Python work hold the interpreter lock of the
process they run in. In a thread of the harness that was the lock the checks running meanwhile
needed; in a child process (``python -m postdeploy.security.tls_process CACHE_DIR``, the target
pickled on its stdin) they run on a core of their own where there is one. The child writes the
run's scan file, exactly as :func:`~postdeploy.security.tls.cached_scan` does in any process
of the run, and the harness reads the report from it. A child that ends without writing it
(killed, crashed) costs only time: the harness then scans in its own process.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from postdeploy.security.tls import TlsScanError, cached_scan, scan_file

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.security.tls import TlsReport

#: The child's whole run at most (the scan's connections each have the target's timeouts).
SCAN_PROCESS_TIMEOUT_S = 300.0


def cached_scan_in_process(
    target: Target, cache_dir: Path, timeout_s: float = SCAN_PROCESS_TIMEOUT_S
) -> TlsReport:
    """:func:`~postdeploy.security.tls.cached_scan`, the scan made by a child process."""
    if not scan_file(target, cache_dir).exists():
        try:
            subprocess.run(
                [sys.executable, "-m", __name__, str(cache_dir)],
                input=pickle.dumps(target),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TlsScanError(
                f"the TLS scan of {target.url} was stopped after {timeout_s:g} s"
            ) from None
    return cached_scan(target, cache_dir)


def main() -> int:
    # only ever started by cached_scan_in_process, whose pipe this is
    target = pickle.load(sys.stdin.buffer)  # noqa: S301
    cached_scan(target, Path(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
