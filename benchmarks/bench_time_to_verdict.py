"""Time to verdict: the gating run, the full run, start -> rollback call; and the verdicts of
the concurrent run (early starts, requests in flight) against the sequential one, per fault.

    python benchmarks/bench_time_to_verdict.py [--runs 5] [--faults all|NAME,NAME|none]
                                               [--spaced] [--raised-limit] [--no-timing]

With the release already deployed (a private state dir and a free port): ``--runs`` gating runs
(``-m gating``, no ``-n``) and full default runs, each timed from process start to exit, and
``--runs`` times a ``health_down`` release checked with ``--rollback auto``, timed from process
start to the rollback's call of the driver (the record's ``started_at``). Then, for each fault
of the catalogue, one gating run as postdeploy runs by default and one sequential run
(``--no-early-start``, one request in flight): the gate and every check's outcome must match.
``--spaced`` waits before each timed run until the target's registration window (60 s) is
clear, so each run meets a fresh window (back to back, the runs share it, as they would in
production, and a run may wait for registration slots). The fault comparison runs the app
with a raised registration limit (declared to the harness too): it compares verdicts, and
back-to-back runs at the shipped limit would mostly measure the window. ``--raised-limit``
times the runs at that raised limit too (the conditions of the issue's first measurement).
``--no-timing`` runs the comparison alone. Prints Markdown tables. Figures, not assertions:
the machine decides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postdeploy.local.platform import LocalPlatform
from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "fixtures"))
from learning_assistant.faults import FAULTS  # noqa: E402

RUN_TIMEOUT_S = 900
DEFAULT_RUNS = 5
HEALTHY = "1.0.0"
SEQUENTIAL = ("--no-early-start",)
#: The shipped registration window, waited out by --spaced.
WINDOW_S = 60
#: The fault comparison's registration limit (app and harness).
RAISED_REGISTRATIONS = 1000


def run(env: dict[str, str], reports: Path, *args: str) -> tuple[float, float, dict]:
    """(seconds to exit, wall-clock start, the local target's verdict entry)."""
    shutil.rmtree(reports, ignore_errors=True)
    wall, started = time.time(), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--target", "local", "-q", "-p", "no:cacheprovider",
         "--reports-dir", str(reports), *args],
        cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    verdict_file = reports / "verdict.json"
    verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
    return elapsed, wall, verdict.get("targets", {}).get("local", {})


def raise_registration_limit(*envs: dict[str, str]) -> list[dict[str, str]]:
    """Raise the app's registration limit for the releases deployed from now on (the platform
    passes this process's environment on) and declare it to the harness in ``envs``."""
    os.environ["LA_RATE_LIMIT_REGISTER"] = f"{RAISED_REGISTRATIONS}/{WINDOW_S}"
    declared = {"POSTDEPLOY_LOCAL_LIMITS_REGISTRATIONS_PER_WINDOW": str(RAISED_REGISTRATIONS)}
    return [{**env, **declared} for env in envs]


def outcomes(entry: dict) -> dict[str, str]:
    """Check -> kind, for the checks that did not pass (the rest passed or were skipped)."""
    return {f["test"]: f["kind"] for f in entry.get("failures", [])}


def row(name: str, values: list[float]) -> str:
    return (
        f"| {name} | {statistics.median(values):.1f} s "
        f"(min {min(values):.1f}, max {max(values):.1f}, n={len(values)}) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="repetitions (5)")
    parser.add_argument("--faults", default="all", help="all, none or NAME,NAME (all)")
    parser.add_argument("--spaced", action="store_true", help="a fresh window for each run")
    parser.add_argument("--raised-limit", action="store_true", help="time at the raised limit")
    parser.add_argument("--no-timing", action="store_true", help="the fault comparison only")
    args = parser.parse_args()
    faults = (
        list(FAULTS) if args.faults == "all"
        else [] if args.faults == "none" else args.faults.split(",")
    )  # fmt: skip

    root = Path(tempfile.mkdtemp(prefix="pd-time-"))
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           "POSTDEPLOY_LOCAL_URL": url, "PYTEST_ADDOPTS": ""}  # fmt: skip
    sequential_env = {**env, "POSTDEPLOY_LOCAL_CONCURRENCY": "1"}
    if args.raised_limit:
        env, sequential_env = raise_registration_limit(env, sequential_env)
    platform = LocalPlatform(url, state_dir=root / "state")
    try:
        platform.deploy(HEALTHY)
        gating, full, to_call = [], [], []
        runs = 0 if args.no_timing else args.runs
        pause = (lambda: time.sleep(WINDOW_S)) if args.spaced else (lambda: None)
        for index in range(runs):
            pause()
            elapsed, _, entry = run(env, root / "r", "-m", "gating")
            gating.append(elapsed)
            print(f"gating run {index + 1}: {elapsed:.1f} s, gate {entry.get('gate')}", flush=True)
        for index in range(runs):
            pause()
            elapsed, _, entry = run(env, root / "r")
            full.append(elapsed)
            print(f"full run {index + 1}: {elapsed:.1f} s, gate {entry.get('gate')}", flush=True)
        for index in range(runs):
            platform.deploy(HEALTHY)
            platform.deploy("2.0.0", ["health_down"])
            pause()
            _, wall, entry = run(env, root / "r", "-m", "gating", "--rollback", "auto")
            record = entry.get("rollback") or {}
            called = record.get("started_at")
            if not called:
                print(f"rollback run {index + 1}: no rollback ({record})", flush=True)
                continue
            to_call.append(dt.datetime.fromisoformat(called).timestamp() - wall)
            print(f"rollback run {index + 1}: call after {to_call[-1]:.1f} s", flush=True)
        spacing = "a fresh registration window each" if args.spaced else "back to back"
        if args.raised_limit:
            spacing += f", registrations raised to {RAISED_REGISTRATIONS}/{WINDOW_S} s"
        if runs:
            print(f"\n| what (this machine, release already deployed, {spacing}) | median |")
            print("| --- | --- |")
            print(row("gating run `pytest --target local -m gating` (no -n)", gating))
            print(row("full default run `pytest --target local`", full))
        if to_call:
            print(row("run start -> rollback call, `health_down`, `--rollback auto`", to_call))

        same, differ = 0, []
        if not args.raised_limit:
            env, sequential_env = raise_registration_limit(env, sequential_env)
        for name in faults:
            platform.deploy("3.0.0", [name])
            _, _, concurrent = run(env, root / "c", "-m", "gating")
            _, _, sequential = run(sequential_env, root / "s", "-m", "gating", *SEQUENTIAL)
            a = (concurrent.get("gate"), outcomes(concurrent))
            b = (sequential.get("gate"), outcomes(sequential))
            if a == b:
                same += 1
            else:
                differ.append(name)
            print(f"fault {name}: concurrent {a[0]} {len(a[1])} not passed, sequential "
                  f"{b[0]} {len(b[1])} not passed{'' if a == b else ' - DIFFERENT'}",
                  flush=True)  # fmt: skip
        if faults:
            print(f"\n| faults | same verdict | different |\n|---|---|---|\n"
                  f"| {len(faults)} | {same} | {', '.join(differ) or 'none'} |")  # fmt: skip
    finally:
        platform.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
