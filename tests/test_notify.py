"""Notifications against a real local receiver: payload shapes, dedup keys, severity, no secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from postdeploy.reporting.channels import (
    PAGERDUTY_EVENTS_URL,
    Notification,
    PagerDutyChannel,
    SlackChannel,
    UnconfiguredChannel,
    WebhookChannel,
    channels_from_config,
    notify,
)
from tests.standins.receiver import Receiver

SLACK_PATH = "/services/T000SECRET/B000SECRET/XXXXwebhookSECRETpath"
ROUTING_KEY = "R0UTINGKEYs3cr3t0123456789abcdef"
HOOK_PATH = "/hooks/postdeploy?token=h00ks3cr3t"
SECRETS = ("T000SECRET", "XXXXwebhookSECRETpath", ROUTING_KEY, "h00ks3cr3t")

FAILED_ROLLBACK = {
    "mode": "auto", "status": "failed", "reason": "release v11 was not serving within 300 s",
    "from_release": {"id": "rel_12", "version": "v12"},
    "to_release": {"id": "rel_11", "version": "v11"},
    "escalate": True,
}  # fmt: skip
GOOD_ROLLBACK = {
    "mode": "auto", "status": "succeeded", "reason": "rolled back",
    "from_release": {"id": "rel_12", "version": "v12"},
    "to_release": {"id": "rel_11", "version": "v11"},
    "verification": {"status": "passed"}, "escalate": False,
}  # fmt: skip


def notification(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "target": "fly", "platform": "fly", "url": "https://la.fly.dev", "verdict": "failed",
        "failing_checks": ["test_health[fly]", "test_login[fly]"], "rollback": GOOD_ROLLBACK,
        "report_url": "https://ci.example.test/runs/7/report", "release": "v12", "run_id": "run-7",
    }  # fmt: skip
    return Notification(**{**fields, **changes})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"{secret} leaked into {str(text)[:200]!r}"


@pytest.fixture
def channels(receiver: Receiver) -> list[Any]:
    return [
        SlackChannel(receiver.url + SLACK_PATH),
        PagerDutyChannel(ROUTING_KEY, receiver.url + "/v2/enqueue"),
        WebhookChannel(receiver.url + HOOK_PATH),
    ]


# -- severity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "rollback", "severity"),
    [
        ("passed", {}, "info"),
        ("failed", {}, "warning"),
        ("inconclusive", {}, "warning"),
        ("failed", GOOD_ROLLBACK, "warning"),
        ("failed", FAILED_ROLLBACK, "critical"),
        ("failed", {**GOOD_ROLLBACK, "verification": {"status": "failed"}}, "critical"),
        ("failed", {"status": "skipped", "reason": "rollback.allowed is false", "escalate": True},
         "critical"),
    ],
)  # fmt: skip
def test_severity_is_critical_exactly_when_a_rollback_or_its_verification_failed(
    verdict: str, rollback: dict[str, Any], severity: str
) -> None:
    assert notification(verdict=verdict, rollback=rollback).severity == severity


def test_the_dedup_key_is_per_target_and_release() -> None:
    assert notification().dedup_key == "postdeploy/fly/v12"
    assert notification(release="").dedup_key == "postdeploy/fly/v12", "from the rollback record"
    assert notification(target="render", release="dep-9").dedup_key == "postdeploy/render/dep-9"


# -- delivery ------------------------------------------------------------------------------


def test_one_notification_reaches_every_channel(receiver: Receiver, channels: list[Any]) -> None:
    results = notify(notification(), channels)
    assert [(r.channel, r.ok, r.status_code) for r in results] == [
        ("slack", True, 200), ("pagerduty", True, 202), ("webhook", True, 200),
    ]  # fmt: skip
    assert [r.path for r in receiver.received] == [SLACK_PATH, "/v2/enqueue", HOOK_PATH]
    assert all(r.headers["content-type"] == "application/json" for r in receiver.received)
    assert_no_secret(*(r.message for r in results), *results)


def test_slack_gets_text_and_blocks(receiver: Receiver, channels: list[Any]) -> None:
    notify(notification(rollback=FAILED_ROLLBACK), channels[:1])
    body = receiver.received[0].body
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith(":rotating_light: [CRITICAL] fly (fly): gate failed")
    assert "ROLLBACK FAILED: release v11 was not serving within 300 s" in body["text"]
    types = [block["type"] for block in body["blocks"]]
    assert types == ["header", "section", "section", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "fly: gate failed"}
    assert "`test_login[fly]`" in body["blocks"][2]["text"]["text"]
    assert (
        "<https://ci.example.test/runs/7/report|report>" in body["blocks"][4]["elements"][0]["text"]
    )


def test_pagerduty_gets_a_documented_trigger_event(receiver: Receiver, channels: list[Any]) -> None:
    notify(notification(rollback=FAILED_ROLLBACK), channels[1:2])
    event = receiver.received[0].body
    assert set(event) == {"routing_key", "event_action", "dedup_key", "payload", "client",
                          "client_url", "links"}  # fmt: skip
    assert (event["routing_key"], event["event_action"], event["dedup_key"]) == (
        ROUTING_KEY, "trigger", "postdeploy/fly/v12",
    )  # fmt: skip
    payload = event["payload"]
    assert {"summary", "source", "severity"} <= set(payload)
    assert (payload["source"], payload["severity"], payload["component"]) == (
        "la.fly.dev", "critical", "fly",
    )  # fmt: skip
    assert payload["severity"] in ("critical", "error", "warning", "info")
    assert len(payload["summary"]) <= 1024
    assert payload["custom_details"]["failing_checks"] == ["test_health[fly]", "test_login[fly]"]
    assert event["links"] == [{"href": "https://ci.example.test/runs/7/report",
                               "text": "postdeploy report"}]  # fmt: skip


def test_a_passing_gate_resolves_the_incident_of_that_target_and_release(
    receiver: Receiver, channels: list[Any]
) -> None:
    notify(notification(verdict="passed", failing_checks=(), rollback={}), channels[1:2])
    assert receiver.received[0].body == {
        "routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "postdeploy/fly/v12",
    }  # fmt: skip


def test_the_generic_webhook_gets_the_whole_notification(
    receiver: Receiver, channels: list[Any]
) -> None:
    notify(notification(), channels[2:])
    body = receiver.received[0].body
    assert body["event"] == "postdeploy.verdict"
    assert (body["target"], body["verdict"], body["severity"]) == ("fly", "failed", "warning")
    assert body["rollback"]["status"] == "succeeded"
    assert body["failing_checks"] == ["test_health[fly]", "test_login[fly]"]
    assert body["dedup_key"] == "postdeploy/fly/v12"
    assert body["report_url"].endswith("/report")


# -- failures never raise, never leak ------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (403, "invalid_token", '403 Forbidden: "invalid_token"'),
        (404, "no_service", "404 Not Found"),
        (400, f"invalid_payload for {SLACK_PATH}", "400 Bad Request"),
    ],
)
def test_a_refused_delivery_is_a_failed_result_with_a_safe_message(
    receiver: Receiver,
    channels: list[Any],
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: str,
    words: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.answer(status, body)
    (result,) = notify(notification(), channels[:1])
    assert not result.ok
    assert result.status_code == status
    assert result.attempts == 1
    assert words in result.message
    assert "127.0.0.1" in result.message
    assert_no_secret(result, caplog.text)


def test_429_and_5xx_are_tried_again_once(receiver: Receiver, channels: list[Any]) -> None:
    receiver.answer(429, "rate limited", headers={"Retry-After": "0"})
    (ok,) = notify(notification(), channels[1:2])
    assert ok.ok
    assert ok.attempts == 2
    receiver.answer(500, "boom")
    receiver.answer(503, "down")
    (failed,) = notify(notification(), channels[1:2])
    assert not failed.ok
    assert failed.attempts == 2
    assert "503" in failed.message
    assert_no_secret(failed)


def test_a_receiver_that_does_not_answer_is_a_timeout_not_a_hang(
    receiver: Receiver, channels: list[Any]
) -> None:
    receiver.answer(200, "ok", delay_s=1.0)
    (result,) = notify(notification(), channels[2:], timeout_s=0.2)
    assert not result.ok
    assert "no answer" in result.message
    assert "within 0.2 s" in result.message
    assert_no_secret(result)


def test_an_unreachable_receiver_is_a_failed_result(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Receiver() as closed:
        url = closed.url
    results = notify(
        notification(), [SlackChannel(url + SLACK_PATH), WebhookChannel(url + HOOK_PATH)]
    )
    assert [r.ok for r in results] == [False, False]
    assert all("could not reach 127.0.0.1" in r.message for r in results)
    assert_no_secret(*results, caplog.text)


def test_channel_reprs_hide_their_secrets(channels: list[Any]) -> None:
    assert_no_secret(*(repr(c) for c in channels))


# -- configuration -------------------------------------------------------------------------


def test_channels_come_from_the_env_vars_the_configuration_names(receiver: Receiver) -> None:
    section = {
        "slack_webhook_env": "PD_SLACK", "pagerduty_routing_key_env": "PD_KEY",
        "pagerduty_url": receiver.url + "/v2/enqueue", "webhook_url_env": "PD_HOOK",
    }  # fmt: skip
    environ = {"PD_SLACK": receiver.url + SLACK_PATH, "PD_KEY": ROUTING_KEY,
               "PD_HOOK": receiver.url + HOOK_PATH}  # fmt: skip
    channels = channels_from_config(section, environ)
    assert [c.name for c in channels] == ["slack", "pagerduty", "webhook"]
    assert all(r.ok for r in notify(notification(), channels))


def test_a_named_but_unset_secret_is_reported_not_sent() -> None:
    channels = channels_from_config({"slack_webhook_env": "PD_SLACK_UNSET"}, environ={})
    assert channels == [
        UnconfiguredChannel("slack", "$PD_SLACK_UNSET (from slack_webhook_env) is not set")
    ]
    (result,) = notify(notification(), channels)
    assert not result.ok
    assert "PD_SLACK_UNSET" in result.message


def test_no_configuration_means_no_channels() -> None:
    assert channels_from_config({}, environ={}) == []
    assert notify(notification(), []) == []


def test_pagerduty_goes_to_the_documented_endpoint_by_default() -> None:
    (channel,) = channels_from_config({"pagerduty_routing_key_env": "K"}, {"K": ROUTING_KEY})
    assert channel.url == PAGERDUTY_EVENTS_URL == "https://events.pagerduty.com/v2/enqueue"
