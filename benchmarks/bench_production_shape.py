"""Production-shape figures: deploy from cold, a new release on a running shape, the default
suite against local-prod vs local, and per-instance faults caught in N of N gating runs.

    python benchmarks/bench_production_shape.py [--runs N] [--suite] [--fault-runs N]

Everything runs in a private state dir on free ports, never touching a running deployment.
Targets (issue 11): deploy from cold under 10 s (database cluster included), a new release on
a running shape under 4 s, the default suite within 1.3x of its time against local, each of
login_broken, health_down, progress_not_persisted, wrong_version on instance 1 of 2 caught in
20 of 20 runs of the gating checks with the instance named. The fault runs raise the app's
registration limit in the open (RATE_LIMIT_REGISTER below): 80 runs a few seconds apart
register far more users a minute than the shipped 30. Figures, not assertions.
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
from postdeploy.local.production import ProductionPlatform
from postdeploy.local.shapes import platform_for
from postdeploy.sysutil import free_port, port_is_free

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 1800
CORE = ("suites/functional", "suites/monitoring/test_health.py")
RATE_LIMIT_REGISTER = "1000/60"
FAULTS = {
    "login_broken": "test_login_returns_a_bearer_token_and_a_session_cookie",
    "health_down": "test_health_endpoint_reports_healthy",
    "progress_not_persisted": "test_a_learning_session_is_recorded_and_progress_reflects_it",
    "wrong_version": "test_health_reports_the_expected_version",
}
PORT_BASE_RANGE = range(21000, 29000, 37)


def _port_base() -> int:
    for base in PORT_BASE_RANGE:
        if all(port_is_free(base + n) for n in (1, 2, 10)):
            return base
    raise SystemExit("no free port base for the production shape")


def _reachable_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="pd-bench-prod-", dir="/tmp"))
    root.chmod(0o755)  # as root, PostgreSQL runs as nobody and must enter it
    return root


def _env(root: Path, *, raise_limit: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "POSTDEPLOY_STATE_DIR": str(root / "state"),
        "POSTDEPLOY_LOCAL_URL": f"https://127.0.0.1:{free_port()}",
        "POSTDEPLOY_LOCAL_PROD_URL": f"https://127.0.0.1:{free_port()}",
        "POSTDEPLOY_LOCAL_PROD_PORT_BASE": str(_port_base()),
        "POSTDEPLOY_LOCAL_PROD_MONITORING_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "POSTDEPLOY_LOCAL_PROD_MONITORING_ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}",
        "PYTEST_ADDOPTS": "",
    }
    if raise_limit:
        env["POSTDEPLOY_LOCAL_PROD_RATE_LIMIT_REGISTER"] = RATE_LIMIT_REGISTER
    return env


def _platform(env: dict[str, str], root: Path) -> ProductionPlatform:
    target = load_targets(REPO / "targets.toml", environ=env).targets["local-prod"]
    platform = platform_for(target, state_dir=root / "state")
    assert isinstance(platform, ProductionPlatform)
    return platform


def _pytest(env: dict[str, str], target: str, reports: Path, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--target", target, "-q", "-p", "no:cacheprovider",
         "--reports-dir", str(reports), *args],
        cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    verdict_file = reports / "verdict.json"
    return elapsed, json.loads(verdict_file.read_text()) if verdict_file.exists() else {}


def bench_deploys(runs: int) -> list[str]:
    cold, warm_cluster, rolling = [], [], []
    for _ in range(runs):
        root = _reachable_root()
        env = _env(root, raise_limit=False)
        platform = _platform(env, root)
        try:
            started = time.perf_counter()
            platform.deploy("1.0.0")
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            platform.deploy("1.1.0")
            rolling.append(time.perf_counter() - started)
            platform.stop()
            started = time.perf_counter()
            platform.deploy("1.2.0")  # the cluster exists: only the processes start
            warm_cluster.append(time.perf_counter() - started)
        finally:
            platform.stop()
            shutil.rmtree(root, ignore_errors=True)

    def row(name: str, values: list[float], goal: str) -> str:
        return (
            f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f}-{max(values):.2f} s "
            f"| {goal} |"
        )

    return [
        "| deploy of the production shape until serving | median | range | target |",
        "| --- | --- | --- | --- |",
        row("from cold (initdb included)", cold, "< 10 s"),
        row("from stopped (cluster exists)", warm_cluster, "-"),
        row("new release, rolling, 2 instances", rolling, "< 4 s"),
    ]


def bench_suite() -> list[str]:
    """The default suite (as `pytest --target X` runs it), each target deploying for itself."""
    root = _reachable_root()
    env = _env(root, raise_limit=False)
    lines = ["| default suite | wall time | passed | failed | broken | 429 answers in failures |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    times = {}
    try:
        for target in ("local", "local-prod"):
            elapsed, verdict = _pytest(env, target, root / f"reports-{target}")
            entry = verdict.get("targets", {}).get(target, {})
            totals = entry.get("totals") or entry.get("counts") or {}
            failures = entry.get("failures", [])
            throttled = sum("429" in f.get("message", "") for f in failures)
            kinds = [f.get("kind") for f in failures]
            times[target] = elapsed
            lines.append(
                f"| {target} | {elapsed:.0f} s | {totals.get('passed', '?')} | "
                f"{kinds.count('failed')} | {kinds.count('broken')} | {throttled} |"
            )
    finally:
        _platform(env, root).stop()
        shutil.rmtree(root, ignore_errors=True)
    lines.append(f"\nratio local-prod / local: {times['local-prod'] / times['local']:.2f}x "
                 "(target <= 1.3x)")  # fmt: skip
    return lines


def bench_faults(runs: int) -> list[str]:
    root = _reachable_root()
    env = _env(root, raise_limit=True)
    platform = _platform(env, root)
    lines = [f"| fault on instance 1 of 2 | caught ({runs} gating runs) | instance named | "
             "median run |", "| --- | --- | --- | --- |"]  # fmt: skip
    try:
        for fault, check in FAULTS.items():
            platform.deploy("1.1.0", [f"{fault}@1"])
            caught = named = 0
            durations = []
            for n in range(runs):
                elapsed, verdict = _pytest(
                    env, "local-prod", root / f"r-{fault}-{n}", *CORE, "-m", "gating",
                    "--expect-version", "1.1.0",
                )  # fmt: skip
                durations.append(elapsed)
                entry = verdict.get("targets", {}).get("local-prod", {})
                messages = [
                    f["message"]
                    for f in entry.get("failures", [])
                    if check in f["test"] and f["kind"] == "failed"
                ]
                caught += entry.get("gate") == "failed" and bool(messages)
                named += any("instance 1" in m and "instance 2:" not in m for m in messages)
            lines.append(
                f"| {fault} | {caught}/{runs} | {named}/{runs} | "
                f"{statistics.median(durations):.1f} s |"
            )
    finally:
        platform.stop()
        shutil.rmtree(root, ignore_errors=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Deploy repetitions (default: 3)")
    parser.add_argument("--suite", action="store_true", help="Time the default suite too")
    parser.add_argument(
        "--fault-runs", type=int, default=0, help="Gating runs per per-instance fault (e.g. 20)"
    )
    args = parser.parse_args()
    print("\n".join(bench_deploys(args.runs)), flush=True)
    if args.suite:
        print()
        print("\n".join(bench_suite()), flush=True)
    if args.fault_runs:
        print()
        print("\n".join(bench_faults(args.fault_runs)), flush=True)


if __name__ == "__main__":
    main()
