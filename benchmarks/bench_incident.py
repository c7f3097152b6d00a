"""Incident-path figures: how soon people hear of a rollback, how long it and recovery take,
and how available the app stayed while it ran.

    python benchmarks/bench_incident.py [--runs N] [--target local|local-prod]

Each run deploys a good release and a failing one (``health_down`` on ``local``, whose only
instance stops during the rollback; ``login_broken`` on ``local-prod``, rolled instance by
instance), runs the gating checks with ``--rollback auto`` while a real HTTP receiver listens
as Slack, and reads the figures from verdict.json and the receiver. Private state dir and
ports. Prints a Markdown table. Figures, not assertions: the machine decides.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402
from tests.standins.receiver import Receiver  # noqa: E402

RUN_TIMEOUT_S = 600
SCENARIOS = {
    "local": ("health_down", ("suites/monitoring/test_health.py",)),
    "local-prod": (
        "login_broken",
        ("suites/functional/test_authentication.py", "suites/monitoring/test_health.py"),
    ),
}


def _at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def environment(target: str, root: Path) -> dict[str, str]:
    env = {
        **os.environ, "PYTHONPATH": str(REPO), "PYTEST_ADDOPTS": "",
        "POSTDEPLOY_STATE_DIR": str(root / "state"),
    }  # fmt: skip
    if target == "local":
        env["POSTDEPLOY_LOCAL_URL"] = f"https://127.0.0.1:{free_port()}"
    else:
        from tests.test_local_production import _env

        env.update(_env(root))
    return env


def platform(target: str, env: dict[str, str]):
    from postdeploy.config import load_targets
    from postdeploy.local.platform import LocalPlatform

    if target == "local":
        return LocalPlatform(
            env["POSTDEPLOY_LOCAL_URL"], state_dir=Path(env["POSTDEPLOY_STATE_DIR"])
        )
    from postdeploy.local.shapes import platform_for

    config = load_targets(REPO / "targets.toml", environ=env).targets[target]
    return platform_for(config, state_dir=Path(env["POSTDEPLOY_STATE_DIR"]))


def one_run(target: str, run: int) -> dict[str, float]:
    fault, suites = SCENARIOS[target]
    root = Path(tempfile.mkdtemp(prefix="pd-incident-", dir="/tmp"))
    root.chmod(0o755)
    env = environment(target, root)
    deployment = platform(target, env)
    try:
        deployment.deploy("1.0.0")
        deployment.deploy("2.0.0", [fault])
        with Receiver() as receiver:
            prefix = f"POSTDEPLOY_{target.upper().replace('-', '_')}_NOTIFY_"
            env.update({f"{prefix}SLACK_WEBHOOK_ENV": "BENCH_SLACK",
                        "BENCH_SLACK": f"{receiver.url}/services/bench"})  # fmt: skip
            reports = root / f"run-{run}"
            subprocess.run(
                [sys.executable, "-m", "pytest", *suites, "--target", target, "-m", "gating",
                 "--rollback", "auto", "-q", "-p", "no:cacheprovider",
                 "--reports-dir", str(reports)],
                cwd=REPO, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
            )  # fmt: skip
            first_message = min(r.at for r in receiver.received)
        rollback = json.loads((reports / "verdict.json").read_text())["targets"][target]["rollback"]
        times = {e["event"]: _at(e["at"]) for e in rollback["timeline"]}
        availability = rollback["availability"]
        return {
            "initiated_to_message_s": first_message - times["initiated"],
            "message_before_serving_s": times["serving"] - first_message,
            "rollback_s": rollback["objectives"]["rollback_s"],
            "recovery_s": rollback["objectives"]["recovery_s"],
            "availability_pct": 100.0 * (availability["availability"] or 0.0),
            "longest_gap_s": availability["longest_gap_s"],
            "probes": availability["sent"],
        }
    finally:
        deployment.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target", choices=sorted(SCENARIOS), default="local")
    args = parser.parse_args()
    results = [one_run(args.target, n) for n in range(args.runs)]
    print(f"| {args.target} ({SCENARIOS[args.target][0]}), {args.runs} runs | median | min | max |")
    print("| --- | --- | --- | --- |")
    for key in results[0]:
        values = [r[key] for r in results]
        print(
            f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | {max(values):.2f} |"
        )


if __name__ == "__main__":
    main()
