"""Foundation speed figures: deploy-to-serving, a full local run, failure-to-rollback.

    python benchmarks/bench_foundation.py [--runs N]

Uses a private state dir and a free port, so it never touches a running local deployment.
Prints a Markdown table for the README. Figures, not assertions: the machine decides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postdeploy.local.platform import LocalPlatform
from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 900


def pytest_run(env: dict[str, str], reports: Path, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--target", "local", "-q", "-p", "no:cacheprovider",
         "--reports-dir", str(reports), *args],
        cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    return elapsed, json.loads((reports / "verdict.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Repetitions (default: 3)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pd-bench-"))
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           "POSTDEPLOY_LOCAL_URL": url, "PYTEST_ADDOPTS": ""}  # fmt: skip
    platform = LocalPlatform(url, state_dir=root / "state")

    deploys = []
    for index in range(args.runs):
        started = time.perf_counter()
        platform.deploy(f"1.0.{index}")
        deploys.append(time.perf_counter() - started)
    platform.stop()

    full_runs = []
    for index in range(args.runs):
        elapsed, verdict = pytest_run(env, root / f"full-{index}")
        assert verdict["targets"]["local"]["gate"] == "passed", verdict["targets"]["local"]
        full_runs.append(elapsed)

    to_call, rollback, recovery, end_to_end = [], [], [], []
    for index in range(args.runs):
        platform.deploy("1.0.0")
        platform.deploy("2.0.0", ["login_broken"])
        elapsed, verdict = pytest_run(
            env, root / f"rollback-{index}", "-m", "gating", "--rollback", "auto"
        )
        record = verdict["targets"]["local"]["rollback"]
        assert record["status"] == "succeeded", record
        to_call.append(record["detection_to_call_s"])
        rollback.append(record["duration_s"])
        recovery.append(record["duration_s"] + record["verification"]["duration_s"])
        detected = dt.datetime.fromisoformat(record["detected_at"])
        finished = dt.datetime.fromisoformat(record["finished_at"])
        end_to_end.append((finished - detected).total_seconds())
    platform.stop()

    def row(name: str, values: list[float], unit: str = "s") -> str:
        return (
            f"| {name} | {statistics.median(values):.3f} {unit} "
            f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)}) |"
        )

    print("| what | median |")
    print("| --- | --- |")
    print(row("`postdeploy local deploy` until serving", deploys))
    print(row("full default `pytest --target local` (deploy + every suite + stop)", full_runs))
    print(row("first gating failure -> rollback call", to_call))
    print(row("rollback until the previous release serves", rollback))
    print(row("rollback + verification (gating health checks re-run)", recovery))
    print(row("detection -> rollback -> verification done (end to end)", end_to_end))


if __name__ == "__main__":
    main()
