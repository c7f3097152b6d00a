"""``postdeploy drill``: could the target be rolled back now? Against the real local platform."""

from __future__ import annotations

import json
import subprocess
import sys

from postdeploy.rollback.ledger import LEDGER_DIR, Ledger
from tests.conftest import REPO

DRILL_TIMEOUT_S = 180


def drill(local_env, tmp_path, **env: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "postdeploy.cli", "drill", "--target", "local",
         "--reports-dir", str(reports)],
        cwd=REPO, env={**local_env.env, **env}, capture_output=True, text=True,
        timeout=DRILL_TIMEOUT_S, check=False,
    )  # fmt: skip
    return done, json.loads((reports / "drill.json").read_text())


def checks(report: dict) -> dict[str, bool]:
    return {c["check"]: c["ok"] for c in report["checks"]}


def test_without_a_previous_release_the_drill_says_so(local_env, tmp_path):
    local_env.platform.deploy("1.0.0")
    done, report = drill(local_env, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert checks(report)["previous good release"] is False
    assert "FAIL previous good release: no earlier release of local to roll back to" in (
        done.stdout
    )
    assert "a rollback could NOT happen now" in done.stdout


def test_the_drill_passes_against_a_healthy_target_with_a_previous_release(local_env, tmp_path):
    local_env.platform.deploy("2.0.0")
    done, report = drill(local_env, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["ready"] is True
    assert report["gate"]["status"] == "passed"
    assert all(checks(report).values())
    assert "would roll back to release 1 (1.0.0)" in done.stdout
    assert local_env.platform.status().release.version == "2.0.0"  # nothing was called


def test_in_cooldown_the_drill_says_when_and_why_not(local_env, tmp_path):
    Ledger(local_env.state_dir / LEDGER_DIR).record("local", run_id="earlier", event="rollback",
                                                    to="1", new="3")  # fmt: skip
    done, report = drill(local_env, tmp_path, POSTDEPLOY_LOCAL_ROLLBACK_COOLDOWN_S="3600")
    assert done.returncode == 1
    assert checks(report)["not in cooldown"] is False
    assert "inside the 3600 s cooldown" in done.stdout
    assert "run earlier" in done.stdout


def test_a_held_lock_makes_the_drill_fail_with_the_lock_named(local_env, tmp_path):
    with Ledger(local_env.state_dir / LEDGER_DIR).hold("local") as acquired:
        assert acquired
        done, report = drill(local_env, tmp_path, POSTDEPLOY_LOCAL_ROLLBACK_COOLDOWN_S="0")
    assert done.returncode == 1
    assert checks(report)["lock free"] is False
    assert "holds the rollback lock of local" in done.stdout
