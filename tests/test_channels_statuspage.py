"""Statuspage against a stand-in of its documented incidents API: open, update, resolve."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postdeploy.reporting.channels import Event, Notification, notify
from postdeploy.reporting.notifications import all_channels
from postdeploy.reporting.statuspage import StatuspageChannel
from tests.standins.statuspage import StatuspageStandin

KEY = "statuspageSECRETkey0123456789"
PAGE = "page0123"
COMPONENT = "comp0123"


@pytest.fixture
def standin() -> Iterator[StatuspageStandin]:
    with StatuspageStandin(PAGE, KEY) as running:
        yield running


def channel(standin: StatuspageStandin, key: str = KEY) -> StatuspageChannel:
    return StatuspageChannel(key, page_id=PAGE, component_id=COMPONENT, url=standin.url)


def event(kind: Event, sev: int | None = 1, verdict: str = "failed") -> Notification:
    return Notification(
        target="fly", platform="fly", url="https://la.fly.dev", verdict=verdict,
        failing_checks=["test_health[fly]"], release="v12", event=kind, sev=sev,
        rollback={"status": "succeeded" if kind == Event.COMPLETED else "",
                  "from_release": {"version": "v12"}, "to_release": {"version": "v11"}},
    )  # fmt: skip


def test_a_sev_1_opens_an_incident_with_the_component_down(standin):
    page = channel(standin)
    [result] = notify(event(Event.INITIATED), [page])
    assert result.ok, result.message
    [incident] = standin.incidents.values()
    assert incident.status == "identified"
    assert incident.name == "fly: CRITICAL: emergency rollback initiated"
    assert standin.component_status == {COMPONENT: "major_outage"}
    assert "Sev 1" in incident.updates[0]["body"]


def test_later_events_update_the_same_incident_and_verified_recovery_resolves_it(standin):
    page = channel(standin)
    notify(event(Event.INITIATED), [page])
    notify(event(Event.FAILED), [page])
    notify(event(Event.COMPLETED), [page])
    [incident] = standin.incidents.values()
    assert [u["status"] for u in incident.updates] == ["identified", "identified", "resolved"]
    assert standin.component_status == {COMPONENT: "operational"}
    assert [m for m, _, _ in standin.requests] == ["POST", "PATCH", "PATCH"]
    assert not page.wants(event(Event.SUMMARY))  # resolved: the summary adds nothing


def test_only_a_sev_1_opens_an_incident(standin):
    page = channel(standin)
    assert not page.wants(event(Event.SUMMARY, sev=2))
    assert not page.wants(event(Event.SUMMARY, sev=3))
    assert not page.wants(event(Event.SUMMARY, sev=None, verdict="passed"))
    assert page.wants(event(Event.SUMMARY, sev=1))


def test_a_refused_key_is_a_failed_result_that_never_shows_the_key(standin):
    [result] = notify(event(Event.INITIATED), [channel(standin, key="wrong" + KEY)])
    assert not result.ok
    assert "answered 401" in result.message
    assert KEY not in result.message
    assert standin.incidents == {}
    assert KEY not in repr(channel(standin))


def test_a_failing_api_is_recorded_and_harmless(standin):
    standin.fail_with = 503
    page = channel(standin)
    [result] = notify(event(Event.INITIATED), [page])
    assert not result.ok
    assert "answered 503" in result.message
    assert page.wants(event(Event.SUMMARY))  # nothing opened: the summary tries again


def test_an_unreachable_api_is_a_failed_result():
    page = StatuspageChannel(KEY, page_id=PAGE, url="http://127.0.0.1:9/v1")
    [result] = notify(event(Event.INITIATED), [page], timeout_s=1.0)
    assert not result.ok
    assert "could not reach 127.0.0.1:9" in result.message


def test_the_channel_comes_from_the_configuration(standin):
    section = {
        "statuspage_api_key_env": "SELFTEST_STATUSPAGE", "statuspage_page_id": PAGE,
        "statuspage_component_id": COMPONENT, "statuspage_url": standin.url,
    }  # fmt: skip
    [page] = all_channels(section, {"SELFTEST_STATUSPAGE": KEY})
    assert isinstance(page, StatuspageChannel)
    assert (page.page_id, page.component_id, page.url) == (PAGE, COMPONENT, standin.url)


def test_a_key_without_a_page_is_reported_not_sent():
    section = {"statuspage_api_key_env": "SELFTEST_STATUSPAGE"}
    [page] = all_channels(section, {"SELFTEST_STATUSPAGE": KEY})
    [result] = notify(event(Event.INITIATED), [page])
    assert not result.ok
    assert "statuspage_page_id is not set" in result.message
    [unset] = all_channels(section, {})
    assert "$SELFTEST_STATUSPAGE" in notify(event(Event.INITIATED), [unset])[0].message
