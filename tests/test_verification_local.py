"""A rollback's verification against the real local platform: the run's gating checks re-run
against the restored release with its version expected, and the data marker read back."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from postdeploy.rollback.consistency import MarkerStore
from tests.standins.receiver import Receiver

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "verdict.schema.json"

CORE = ("suites/functional", "suites/monitoring/test_health.py")
LOGIN = "test_login_returns_a_bearer_token_and_a_session_cookie"


@pytest.fixture
def fresh(local_env):
    """Each test starts from a new history and no data marker."""
    local_env.platform.stop()
    for path in local_env.state_dir.glob("data-markers/*.json"):
        path.unlink()
    return local_env


def audit_events(local_env) -> list[str]:
    audit = local_env.reports_root / f"run-{local_env.runs}" / "rollback-audit.jsonl"
    return [json.loads(line)["event"] for line in audit.read_text().splitlines()]


def test_a_healthy_gated_run_writes_the_data_marker(fresh):
    fresh.platform.deploy("1.0.0")
    run = fresh.run("-m", "gating", "--rollback", "auto", suites=CORE)
    assert run.returncode == 0, run.output[-3000:]
    assert "data_marker" in audit_events(fresh)
    markers = list(fresh.state_dir.glob("data-markers/*.json"))
    assert [p.name for p in markers] == ["local.json"]
    stored = json.loads(markers[0].read_text())
    assert stored["marker"]["progress"]["sessions"] == 1
    assert stored["account"]["password"] not in run.output + json.dumps(run.verdict)


def test_a_rollback_to_a_broken_release_fails_verification_naming_the_checks(fresh):
    platform = fresh.platform
    v1 = platform.deploy("1.0.0", ["login_broken"])
    v2 = platform.deploy("2.0.0", ["health_down"])
    before = len(platform.releases())
    with Receiver() as receiver:
        env = {
            "POSTDEPLOY_LOCAL_NOTIFY_PAGERDUTY_ROUTING_KEY_ENV": "SELFTEST_PD_KEY",
            "SELFTEST_PD_KEY": "R0UT1NGKEYVERIFY0123456789",
            "POSTDEPLOY_LOCAL_NOTIFY_PAGERDUTY_URL": f"{receiver.url}/v2/enqueue",
        }
        run = fresh.run("-m", "gating", "--rollback", "auto", suites=CORE, env=env)
    # escalated: the page is critical, and says the verification failed
    pages = [r.body for r in receiver.received if r.path.startswith("/v2/enqueue")]
    assert pages, "no escalation was sent"
    assert {page["payload"]["severity"] for page in pages} == {"critical"}

    rollback = run.target()["rollback"]
    assert rollback["to_release"]["id"] == str(v1.id), rollback
    assert rollback["from_release"]["id"] == str(v2.id)
    assert rollback["status"] == "failed"
    assert rollback["escalate"] is True
    verification = rollback["verification"]
    assert verification["status"] == "failed"
    assert verification["expect_version"] == "1.0.0"
    failing = {test.rsplit("::", 1)[-1].split("[")[0] for test in verification["failed_checks"]}
    assert LOGIN in failing
    assert LOGIN in rollback["reason"]
    outcomes = {c["test"].rsplit("::", 1)[-1].split("[")[0]: c["outcome"]
                for c in verification["checks"]}  # fmt: skip
    assert outcomes["test_health_endpoint_reports_healthy"] == "passed"
    assert outcomes[LOGIN] == "failed"
    assert len(verification["checks"]) >= 10, "every gating check of the run, not only health"

    # no second rollback: one rollback call, and the broken v1 still serves
    assert audit_events(fresh).count("rollback_started") == 1
    current = platform.current()
    assert (current.version, current.faults) == ("1.0.0", ("login_broken",))
    assert len(platform.releases()) == before + 1
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(run.verdict)


def test_a_rollback_that_loses_the_marker_record_fails_verification(fresh):
    platform = fresh.platform
    platform.deploy("1.0.0")
    platform.deploy("2.0.0", ["data_loss_on_rollback", "health_down"])
    run = fresh.run("-m", "gating", "--rollback", "auto", suites=CORE)

    rollback = run.target()["rollback"]
    assert rollback["status"] == "failed", rollback
    assert rollback["escalate"] is True
    verification = rollback["verification"]
    assert verification["failed_checks"] == [], "v1 itself is healthy"
    data = verification["data"]
    assert data["status"] == "failed"
    assert data["marker_run_id"] == run.verdict["run_id"], "this run's marker was written"
    assert "data consistency" in rollback["reason"]
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(run.verdict)


def test_a_release_that_cannot_write_the_marker_is_verified_with_the_last_run_s(fresh):
    platform = fresh.platform
    platform.deploy("1.0.0")
    first = fresh.run("-m", "gating", "--rollback", "auto", suites=CORE)
    assert first.returncode == 0, first.output[-3000:]
    platform.deploy("2.0.0", ["login_broken"])  # cannot log the marker account in
    run = fresh.run("-m", "gating", "--rollback", "auto", suites=CORE)

    rollback = run.target()["rollback"]
    assert rollback["status"] == "succeeded", rollback
    data = rollback["verification"]["data"]
    assert data["status"] == "passed"
    assert data["marker_run_id"] == first.verdict["run_id"]
    store = MarkerStore(fresh.state_dir / "data-markers" / "local.json").load()
    assert store["marker"]["run_id"] == first.verdict["run_id"]


def test_under_xdist_every_gating_check_is_rerun_too(fresh):
    platform = fresh.platform
    platform.deploy("1.0.0")
    platform.deploy("2.0.0", ["health_down"])
    run = fresh.run("-n", "2", "-m", "gating", "--rollback", "auto", suites=CORE)
    rollback = run.target()["rollback"]
    assert rollback["status"] == "succeeded", rollback
    rerun = {
        c["test"].rsplit("::", 1)[-1].split("[")[0] for c in rollback["verification"]["checks"]
    }
    assert {LOGIN, "test_health_endpoint_reports_healthy"} <= rerun
    assert len(rerun) >= 10, rerun
