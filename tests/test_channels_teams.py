"""Microsoft Teams: a Workflows webhook gets an Adaptive Card; failures are results, no secret."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postdeploy.reporting.channels import Event, Notification, notify
from postdeploy.reporting.notifications import all_channels
from postdeploy.reporting.teams import ADAPTIVE_CARD_TYPE, TeamsChannel
from tests.standins.receiver import Receiver

TEAMS_PATH = "/workflows/0123abcd/triggers/manual/paths/invoke"
SIGNATURE = "sig=teamsSECRETsignature0123"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def channel(receiver: Receiver) -> TeamsChannel:
    return TeamsChannel(f"{receiver.url}{TEAMS_PATH}?api-version=1&{SIGNATURE}")


def initiated() -> Notification:
    return Notification(
        target="fly", platform="fly", url="https://la.fly.dev", verdict="failed",
        failing_checks=["suites/monitoring/test_health.py::test_health[fly]"],
        rollback={"from_release": {"version": "v12"}, "to_release": {"version": "v11"}},
        report_url="https://ci.example.test/report", release="v12", run_id="run-1",
        event=Event.INITIATED, sev=1, sev_reasons=["critical check failed: test_health"],
        details=["detected  12:00:00.000Z (+0.000 s)", "initiated 12:00:00.300Z (+0.300 s)"],
    )  # fmt: skip


def test_the_webhook_gets_a_message_with_one_adaptive_card(receiver, channel):
    [result] = notify(initiated(), [channel])
    assert result.ok, result.message
    body = receiver.received[0].body
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert (
        attachment["contentType"] == ADAPTIVE_CARD_TYPE == "application/vnd.microsoft.card.adaptive"
    )
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["version"] == "1.4"
    title = card["body"][0]
    assert title["text"] == "fly: CRITICAL: emergency rollback initiated"
    assert title["color"] == "Attention"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Severity"] == "Sev 1 (critical)"
    assert facts["Release"] == "v12"
    texts = " ".join(block.get("text", "") for block in card["body"])
    assert "test_health[fly]" in texts
    assert "initiated 12:00:00.300Z" in texts
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Report", "url": "https://ci.example.test/report"}
    ]


def test_202_accepted_is_a_delivery(receiver, channel):
    receiver.answer(202, "")
    [result] = notify(initiated(), [channel])
    assert result.ok
    assert result.status_code == 202


def test_a_refusal_is_recorded_without_the_url_path_or_signature(receiver, channel):
    receiver.answer(400, f"bad request for {TEAMS_PATH}?{SIGNATURE}")
    [result] = notify(initiated(), [channel])
    assert not result.ok
    assert "answered 400" in result.message
    assert SIGNATURE.split("=")[1] not in result.message
    assert "0123abcd" not in result.message
    assert SIGNATURE not in repr(channel)


def test_an_unreachable_flow_is_a_failed_result_not_an_exception():
    channel = TeamsChannel(f"http://127.0.0.1:9{TEAMS_PATH}?{SIGNATURE}")
    [result] = notify(initiated(), [channel], timeout_s=1.0)
    assert not result.ok
    assert "could not reach 127.0.0.1:9" in result.message
    assert SIGNATURE.split("=")[1] not in result.message


def test_the_channel_comes_from_the_env_var_the_configuration_names(receiver):
    section = {"teams_webhook_env": "SELFTEST_TEAMS"}
    [channel] = all_channels(section, {"SELFTEST_TEAMS": f"{receiver.url}{TEAMS_PATH}"})
    assert isinstance(channel, TeamsChannel)
    [unset] = all_channels(section, {})
    assert unset.name == "teams"
    assert "$SELFTEST_TEAMS" in notify(initiated(), [unset])[0].message
