"""Security suite speed: the whole suite against the local target, and where the time goes.

    python benchmarks/bench_security.py [--runs N]

Deploys a healthy release on a private state dir and a free port, runs
``pytest suites/security --target local`` N times (each a fresh process, as a user runs it),
and prints a Markdown table: wall time of the whole run (process start to exit), the time
pytest reports for the session, the slowest phases from pytest's durations (the TLS scan;
the hostile-input corpus and schemathesis, which overlap), how many TLS scans each run made
(one per target and run is the design) and the machine's load. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postdeploy.local.platform import LocalPlatform
from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 600
TARGET_S = 30.0
#: The first test to use each expensive session fixture carries its setup time.
PHASES = {
    "TLS scan (sslyze, once)": "test_certificate_chain_is_valid_and_trusted",
    "hostile-input corpus and schemathesis (overlapped)": (
        "test_hostile_input_never_causes_a_server_error"
    ),
}


def run_suite(env: dict[str, str], reports: Path) -> tuple[float, float, dict[str, float], str]:
    """(wall s, pytest session s, phase -> s, last output line) of one run."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/security", "--target", "local", "-q",
         "-p", "no:cacheprovider", "--reports-dir", str(reports), "--durations=0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    session = re.search(r"in ([\d.]+)s", done.stdout.splitlines()[-1] if done.stdout else "")
    phases = {}
    for phase, test in PHASES.items():
        match = re.search(rf"([\d.]+)s setup\s+\S+::{test}\[", done.stdout)
        phases[phase] = float(match.group(1)) if match else float("nan")
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    return wall, float(session.group(1)) if session else float("nan"), phases, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Repetitions (default: 3)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pd-bench-security-"))
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           "POSTDEPLOY_LOCAL_URL": url, "PYTEST_ADDOPTS": ""}  # fmt: skip
    platform = LocalPlatform(url, state_dir=root / "state")
    platform.deploy("1.0.0")
    walls, sessions, loads = [], [], []
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    try:
        for index in range(args.runs):
            reports = root / f"run-{index}"
            loads.append(os.getloadavg()[0])
            wall, session, phase_times, summary = run_suite(env, reports)
            scans = len(list((reports / ".runs").glob("*/tls-local.json")))
            note = f"run {index + 1}: {wall:.1f} s wall, {summary}; TLS scans: {scans}"
            print(note, file=sys.stderr)
            walls.append(wall)
            sessions.append(session)
            for phase, seconds in phase_times.items():
                phases[phase].append(seconds)
    finally:
        platform.stop()

    print(f"| security suite, local target ({args.runs} runs, load avg "
          f"{statistics.mean(loads):.1f} on {os.cpu_count()} cores) | median | best |")  # fmt: skip
    print("| --- | --- | --- |")
    print(f"| whole run, process start to exit (target < {TARGET_S:.0f} s) | "
          f"{statistics.median(walls):.1f} s | {min(walls):.1f} s |")  # fmt: skip
    print(f"| pytest session | {statistics.median(sessions):.1f} s | {min(sessions):.1f} s |")
    for phase, values in phases.items():
        print(f"| {phase} | {statistics.median(values):.1f} s | {min(values):.1f} s |")


if __name__ == "__main__":
    main()
