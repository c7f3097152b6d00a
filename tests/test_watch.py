"""The automatic-rollback monitor against the real reference app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postdeploy.config import load_targets
from postdeploy.rollback.controller import Mode
from postdeploy.watch import PROBES, WatchSettings, parse_duration, watch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "seconds"), [("10m", 600), ("30s", 30), ("1.5h", 5400), ("250ms", 0.25), ("45", 45)]
)
def test_durations_read_like_the_operations_plan(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_bad_duration_says_how_to_write_one():
    with pytest.raises(ValueError, match=r"write e\.g\. 90s, 10m or 1h"):
        parse_duration("ten minutes")


def test_the_request_budget_is_bounded_by_duration_and_interval():
    assert WatchSettings(duration_s=600, interval_s=30).max_requests == 21 * len(PROBES)


def local_target(local_env):
    environ = {"POSTDEPLOY_LOCAL_URL": local_env.url}
    return load_targets(REPO / "targets.toml", environ=environ).targets["local"]


def run_watch(local_env, tmp_path, **settings):
    return watch(
        local_target(local_env),
        WatchSettings(**settings),
        mode=Mode.AUTO,
        reports_dir=tmp_path,
        rootdir=REPO,
        targets_file=REPO / "targets.toml",
        run_id="watch-selftest",
        sleep=lambda s: None,
        say=lambda line: None,
    )


def test_a_healthy_release_passes_the_watch_within_its_budget(local_env, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTDEPLOY_STATE_DIR", str(local_env.state_dir))
    local_env.platform.deploy("1.0.0")
    result = run_watch(local_env, tmp_path, duration_s=4, interval_s=1, error_threshold=2)
    assert result.verdict["targets"]["local"]["gate"] == "passed"
    assert result.rollback is None
    assert result.requests <= WatchSettings(duration_s=4, interval_s=1).max_requests


def test_errors_reaching_the_threshold_roll_back_and_verify(local_env, tmp_path, monkeypatch):
    monkeypatch.setenv("POSTDEPLOY_STATE_DIR", str(local_env.state_dir))
    monkeypatch.setenv("POSTDEPLOY_LOCAL_URL", local_env.url)
    local_env.platform.deploy("1.0.0")
    local_env.platform.deploy("1.1.0", ["health_down"])
    result = run_watch(local_env, tmp_path, duration_s=60, interval_s=1, error_threshold=3)
    entry = json.loads((tmp_path / "verdict.json").read_text())["targets"]["local"]
    assert entry["gate"] == "failed"
    assert result.rollback.status == "succeeded", result.rollback.reason
    assert entry["rollback"]["verification"]["status"] == "passed"
    assert local_env.platform.current().faults == ()
    audit = (tmp_path / "rollback-audit.jsonl").read_text()
    assert "rollback_succeeded" in audit


def test_the_cli_refuses_bad_input_clearly(local_env):
    done = local_env.cli("watch", "--target", "local", "--duration", "soon")
    assert done.returncode == 2
    assert "'soon' is not a duration" in done.stderr
    assert "Traceback" not in done.stderr
