"""The load test's Locust started early (``hold_load``): it waits, sending nothing, for its go;
released, it exits without a request; given the go, it runs the profile as a fresh start does.

The target here is a closed port on loopback: nothing is sent anywhere."""

from __future__ import annotations

import dataclasses

from postdeploy.performance.load import LoadSettings, hold_load, run_load
from postdeploy.sysutil import free_port

WAIT_S = 30


def settings(**changes) -> LoadSettings:
    closed = f"https://127.0.0.1:{free_port()}"
    return dataclasses.replace(
        LoadSettings(host=closed, profile="quick", timeout_s=2.0, run_id="heldtest"), **changes
    )


def test_a_held_locust_released_without_a_go_exits_having_sent_nothing(tmp_path):
    held = hold_load(settings(), tmp_path)
    assert held is not None
    assert held.process.poll() is None  # waiting for its go
    held.release()
    assert held.process.wait(WAIT_S) == 0
    log = (tmp_path / "master.log").read_text()
    assert "Starting Locust" not in log, log
    assert not list(tmp_path.glob("locust*"))  # no stats: it never ran


def test_a_held_locust_given_the_go_runs_the_profile(tmp_path):
    chosen = settings()
    held = hold_load(chosen, tmp_path)
    assert held is not None
    result = run_load(chosen, tmp_path, held)
    # every request to the closed port fails: the run aborts on its error rate, as a fresh
    # start would - the profile ran, with this very process
    assert result.exit_code == held.process.returncode == 3
    assert result.aborted
    assert result.total is not None
    assert result.total.requests > 0
    assert "Starting Locust" in (tmp_path / "master.log").read_text()


def test_a_held_locust_for_other_settings_is_released_and_a_fresh_one_runs(tmp_path):
    held = hold_load(settings(), tmp_path / "held")
    assert held is not None
    result = run_load(settings(), tmp_path / "fresh", held)
    assert held.process.wait(WAIT_S) == 0
    assert "Starting Locust" not in (tmp_path / "held" / "master.log").read_text()
    assert result.exit_code == 3
    assert result.total is not None
    assert result.total.requests > 0


def test_no_locust_is_held_for_a_distributed_run(tmp_path):
    assert hold_load(settings(workers=2), tmp_path) is None
    assert not (tmp_path / "master.log").exists()
