"""False alarms: N consecutive full default runs, back to back with no pause, against a healthy
local deployment at the app's shipped rate limits; every failed and broken check counted.

    python benchmarks/bench_false_alarms.py [--target local|local-prod] [--runs 20]

One deployment serves every run (a healthy release deployed once, stopped at the end), so the
target's rate-limit windows carry over from one run to the next as they would in production.
Uses a private state dir and a free port. Prints one line per run and a Markdown summary.
Figures, not assertions: the machine decides.
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

from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
#: One full default run may take this long before it counts as hung.
RUN_TIMEOUT_S = 1800
DEFAULT_RUNS = 20
HEALTHY_VERSION = "1.0.0"
STATE_DIR_MODE = 0o755


def one_run(env: dict[str, str], target: str, reports: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--target", target, "-q", "-p", "no:cacheprovider",
         "--reports-dir", str(reports)],
        cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    verdict_file = reports / "verdict.json"
    verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
    return elapsed, verdict.get("targets", {}).get(target, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="local", help="local or local-prod (default local)")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs (default 20)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pd-false-alarms-"))
    root.chmod(STATE_DIR_MODE)  # the production shape's PostgreSQL (nobody) must enter it
    url = f"https://127.0.0.1:{free_port()}"
    name = args.target.upper().replace("-", "_")
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           f"POSTDEPLOY_{name}_URL": url, "PYTEST_ADDOPTS": ""}  # fmt: skip
    if args.target == "local-prod":  # ports of its own: others may run the production shape
        env.update({
            f"POSTDEPLOY_{name}_PORT_BASE": str(free_port()),
            f"POSTDEPLOY_{name}_MONITORING_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
            f"POSTDEPLOY_{name}_MONITORING_ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}",
        })  # fmt: skip
    cli = [sys.executable, "-m", "postdeploy.cli", "local", "--target", args.target]
    subprocess.run([*cli, "deploy", HEALTHY_VERSION], cwd=REPO, env=env,
                   capture_output=True, timeout=RUN_TIMEOUT_S, check=True)  # fmt: skip
    rows, totals = [], {"failed": 0, "broken": 0}
    try:
        for index in range(args.runs):
            elapsed, entry = one_run(env, args.target, root / f"run-{index}")
            counts = entry.get("counts", {})
            failures = [
                f"{f['kind']}: {f['test'].rsplit('::', 1)[-1]}" for f in entry.get("failures", [])
            ]
            for kind in totals:
                totals[kind] += int(counts.get(kind, 0))
            rows.append((index + 1, elapsed, entry.get("gate", "no verdict"), counts, failures))
            print(
                f"run {index + 1}: {elapsed:.0f} s, gate {entry.get('gate', 'no verdict')}, "
                f"{counts}" + (f" - {'; '.join(failures)}" if failures else ""),
                flush=True,
            )
    finally:
        subprocess.run([*cli, "stop"], cwd=REPO, env=env,
                       capture_output=True, timeout=RUN_TIMEOUT_S, check=False)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
    print("\n| target | runs | failed | broken | gates passed | mean run |")
    print("|---|---|---|---|---|---|")
    passed = sum(1 for row in rows if row[2] == "passed")
    mean = sum(row[1] for row in rows) / max(len(rows), 1)
    print(
        f"| {args.target} | {len(rows)} | {totals['failed']} | {totals['broken']} | "
        f"{passed}/{len(rows)} | {mean:.0f} s |"
    )


if __name__ == "__main__":
    main()
