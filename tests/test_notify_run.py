"""Notifications from a real validation run: one per target per run, quiet on success."""

from __future__ import annotations

import pytest

from tests.standins.receiver import Receiver

CORE = ("suites/functional", "suites/monitoring/test_health.py")
SLACK_SECRET = "T000/B000/xoxsecretpathvalue"
ROUTING_KEY = "R0UT1NGKEYSELFTEST0123456789"


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def notify_env(receiver) -> dict[str, str]:
    return {
        "POSTDEPLOY_LOCAL_NOTIFY_SLACK_WEBHOOK_ENV": "SELFTEST_SLACK_WEBHOOK",
        "SELFTEST_SLACK_WEBHOOK": f"{receiver.url}/services/{SLACK_SECRET}",
        "POSTDEPLOY_LOCAL_NOTIFY_PAGERDUTY_ROUTING_KEY_ENV": "SELFTEST_PD_KEY",
        "SELFTEST_PD_KEY": ROUTING_KEY,
        "POSTDEPLOY_LOCAL_NOTIFY_PAGERDUTY_URL": f"{receiver.url}/v2/enqueue",
    }


def by_channel(receiver):
    slack = [r.body for r in receiver.received if r.path.startswith("/services/")]
    pagerduty = [r.body for r in receiver.received if r.path.startswith("/v2/enqueue")]
    return slack, pagerduty


def test_a_failed_gate_tells_each_channel_as_the_rollback_happens(local_env, receiver, notify_env):
    local_env.platform.deploy("1.0.0")
    # the good release's gate writes the data marker that the rollback's verification reads
    local_env.run("-m", "gating", "--rollback", "auto", suites=CORE)
    local_env.platform.deploy("2.0.0", ["login_broken"])
    run = local_env.run("-m", "gating", "--rollback", "auto", suites=CORE, env=notify_env)
    slack, pagerduty = by_channel(receiver)
    assert len(slack) == 3  # rollback initiated, rollback completed, the run's summary
    assert [e["event_action"] for e in pagerduty] == ["trigger", "resolve"]
    event = pagerduty[0]
    assert event["dedup_key"] == "postdeploy/local/2.0.0"
    # authentication failed: Sev 1, which pages even though the rollback then succeeded
    assert event["payload"]["severity"] == "critical"
    assert "rollback initiated" in event["payload"]["summary"]
    assert all(n["ok"] for n in run.target()["notifications"])
    assert [n["event"] for n in run.target()["notifications"] if n["channel"] == "slack"] == [
        "rollback-initiated", "rollback-completed", "summary",
    ]  # fmt: skip
    for text in (run.output, str(run.verdict)):
        assert SLACK_SECRET not in text
        assert ROUTING_KEY not in text


def test_a_rollback_that_cannot_happen_escalates_as_critical(local_env, receiver, notify_env):
    local_env.platform.stop()
    local_env.platform.deploy("3.0.0", ["health_down"])  # nothing different to go back to
    env = {**notify_env, "POSTDEPLOY_LOCAL_ROLLBACK_ALLOWED": "false"}
    local_env.run("-m", "gating", "--rollback", "auto", suites=CORE, env=env)
    _, pagerduty = by_channel(receiver)
    assert pagerduty[0]["payload"]["severity"] == "critical"


def test_a_passing_gate_only_resolves_the_incident(local_env, receiver, notify_env):
    local_env.platform.deploy("2.0.0")
    run = local_env.run("-m", "gating", suites=CORE, env=notify_env)
    assert run.target()["gate"] == "passed"
    slack, pagerduty = by_channel(receiver)
    assert slack == []
    assert [e["event_action"] for e in pagerduty] == ["resolve"]
    assert pagerduty[0]["dedup_key"] == "postdeploy/local/2.0.0"
