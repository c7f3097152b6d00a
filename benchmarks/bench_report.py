"""Report speed figures: the HTML report of a full local run, and the cost of the summary.

    python benchmarks/bench_report.py [--runs N]

1. One full default run (``pytest --target local``: every suite) against a private local
   deployment, then ``postdeploy report``'s build (Allure 3) of its results, N times with the
   history growing: target under 20 s.
2. The end-of-run work this feature adds to every run, measured on that run's real verdict
   and results: the terminal summary (``summary_lines``), and writing the Allure environment,
   executor and categories files with the secret scrub of every result file - each compared
   with the run's own duration.

Uses a private state dir and a free port. Prints a Markdown table for the README. Figures,
not assertions: the machine decides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postdeploy.config import load_targets
from postdeploy.reporting import html as htmlreport
from postdeploy.reporting.allure_files import scrub_results
from postdeploy.reporting.verdict import summary_lines
from postdeploy.settings import known_secrets
from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 900
SUMMARY_REPEATS = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Report builds (default: 3)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pd-bench-report-"))
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           "POSTDEPLOY_LOCAL_URL": url, "PYTEST_ADDOPTS": ""}  # fmt: skip
    reports = root / "reports"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--target", "local", "-q", "-p", "no:cacheprovider",
         "--reports-dir", str(reports)],
        cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    run_s = time.perf_counter() - started
    verdict = json.loads((reports / "verdict.json").read_text())
    results = reports / "allure-results"
    files = len(list(results.iterdir()))
    checks = sum(sum(t["counts"].values()) for t in verdict["targets"].values())

    builds = []
    for _ in range(args.runs):
        built = htmlreport.build(
            results, reports / "allure-report", reports / "allure-history.jsonl", rootdir=REPO
        )
        builds.append(built.duration_s)

    os.environ.update(POSTDEPLOY_LOCAL_URL=url)
    secrets = known_secrets(load_targets(REPO / "targets.toml").select("local"))
    started = time.perf_counter()
    for _ in range(SUMMARY_REPEATS):
        summary_lines(verdict, secrets)
    summary_s = (time.perf_counter() - started) / SUMMARY_REPEATS
    copy = root / "scrub"
    shutil.copytree(results, copy)
    started = time.perf_counter()
    scrub_results(copy, secrets)
    scrub_s = time.perf_counter() - started

    print(f"full local run: {checks} checks, {files} files in allure-results, {run_s:.1f} s\n")
    print("| what | figure |")
    print("| --- | --- |")
    print(
        f"| `postdeploy report` (Allure 3) for a full local run ({checks} checks) | "
        f"median {statistics.median(builds):.1f} s, max {max(builds):.1f} s "
        f"over {len(builds)} builds (history growing) |"
    )
    print(
        f"| terminal summary (`summary_lines`, redacted) | {summary_s * 1e6:.0f} µs "
        f"= {summary_s / run_s * 100:.4f} % of the run |"
    )
    print(
        f"| secret scrub of every result file ({files} files) | {scrub_s * 1000:.0f} ms "
        f"= {scrub_s / run_s * 100:.2f} % of the run |"
    )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
