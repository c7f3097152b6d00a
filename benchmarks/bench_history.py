"""Comparison with earlier runs, end to end: after three passing runs of a healthy release,
``--compare-with previous:3`` passes a healthy run and fails the ``latency_regression`` release.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_history.py [--rounds 3] [--spacing 0]

Each round uses a fresh history dir on one private local deployment (a free port, a temporary
state dir): three runs of the history check that only store their samples (``[canary]
history_samples`` per key endpoint), then one healthy run judged against them, then the
``latency_regression`` release (key endpoints about 30 % slower, far under the 2 s SLO) judged
against the same three. ``--spacing S`` waits S seconds between the runs (stored runs minutes
apart meet another machine load, which is what the run-to-run drift allowance is for). Prints
each judgement's outcome and its regressions, then a Markdown table. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postdeploy.local.platform import LocalPlatform
from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
CHECK = "test_the_release_is_not_worse_than_earlier_runs"
SUITE = "suites/performance/test_canary.py"
RUN_TIMEOUT_S = 600
STORED_RUNS = 3


def run_check(env: dict[str, str], reports: Path, history: Path, *args: str) -> tuple[str, str]:
    """(outcome of the history check: passed, failed, broken, skipped or error; its message)."""
    shutil.rmtree(reports, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pytest", SUITE, "--target", "local", "-q", "-p", "no:cacheprovider",
         f"--reports-dir={reports}", f"--history-dir={history}", "-k", CHECK, *args],
        cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    verdict_file = reports / "verdict.json"
    if not verdict_file.exists():
        return "error", "no verdict.json"
    entry = json.loads(verdict_file.read_text())["targets"]["local"]
    for failure in entry["failures"]:
        return failure["kind"], failure["message"]
    counts = entry["counts"]
    return ("passed" if counts["passed"] else "skipped"), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="fresh histories (3)")
    parser.add_argument("--spacing", type=float, default=0.0, help="seconds between runs (0)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pd-history-"))
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           "POSTDEPLOY_LOCAL_URL": url, "PYTEST_ADDOPTS": ""}  # fmt: skip
    platform = LocalPlatform(url, state_dir=root / "state")
    healthy_passed = slow_failed = 0
    try:
        for round_no in range(1, args.rounds + 1):
            history = root / f"history-{round_no}"
            platform.deploy("1.0.0")
            for index in range(STORED_RUNS):
                outcome, _ = run_check(env, root / "r", history)
                print(f"round {round_no}: stored run {index + 1}: {outcome}", flush=True)
                time.sleep(args.spacing)
            outcome, message = run_check(env, root / "r", history, "--compare-with=previous:3")
            healthy_passed += outcome == "passed"
            print(f"round {round_no}: healthy vs previous:3: {outcome} {message[:300]}", flush=True)
            platform.deploy("2.0.0", ["latency_regression"])
            outcome, message = run_check(env, root / "r", history, "--compare-with=previous:3")
            slow_failed += outcome == "failed"
            print(f"round {round_no}: latency_regression: {outcome} {message[:300]}", flush=True)
            time.sleep(args.spacing)
        print(f"\n| `--compare-with previous:3`, {args.rounds} fresh histories of 3 stored runs "
              f"(spacing {args.spacing:g} s) | result |\n| --- | --- |\n"
              f"| healthy release passes | {healthy_passed}/{args.rounds} |\n"
              f"| `latency_regression` fails | {slow_failed}/{args.rounds} |")  # fmt: skip
    finally:
        platform.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
