"""The App Service driver against the ARM stand-in: swap the staging slot back."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from postdeploy.config import Target
from postdeploy.rollback.azure import API_VERSION, AppServiceDriver
from postdeploy.rollback.base import LOG_WINDOW_S, DriverError, DriverUnavailable, previous_good
from tests.rollback.conftest import FAKE_TOKEN
from tests.rollback.rigs import Rig, azure_rig
from tests.standins import azure
from tests.standins._base import FakeClock


@pytest.fixture
def rig(token: str, make_target: Callable[..., Target], clock: FakeClock) -> Rig:
    return azure_rig(make_target, clock)


def test_releases_are_the_production_and_staging_slots(rig: Rig) -> None:
    production, staging = rig.driver.releases()
    assert (production.id, production.ref, production.can_rollback) == (
        "production", "DOCKER|acr.test/la:2.0", False,
    )  # fmt: skip
    assert (staging.id, staging.ref, staging.version, staging.can_rollback) == (
        "staging", "DOCKER|acr.test/la:1.9", "1.9", True,
    )  # fmt: skip
    assert all(s.params == {"api-version": API_VERSION} for s in rig.standin.seen)


def test_previous_good_is_the_staging_slot(rig: Rig) -> None:
    assert previous_good(rig.driver.releases(), rig.driver.current()).id == "staging"


def test_rollback_swaps_the_slots_back_and_follows_the_operation(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    new = rig.driver.rollback(to)
    swap = rig.standin.calls("POST")[0]
    assert swap.path.endswith("/sites/learning-assistant/slots/staging/slotsswap")
    assert swap.params == {"api-version": API_VERSION}
    assert swap.body == {"targetSlot": "production", "preserveVnet": True}
    assert rig.serving == "DOCKER|acr.test/la:2.0", "202: the swap is still running"
    assert rig.driver.wait_until_serving(new, timeout_s=30)
    assert rig.serving == "DOCKER|acr.test/la:1.9"
    assert any("/operationresults/" in s.path for s in rig.standin.seen)


def test_a_swap_that_takes_a_while_is_waited_for(
    token: str, make_target: Callable[..., Target], clock: FakeClock
) -> None:
    rig = azure_rig(make_target, clock, polls_until_done=4)
    new = rig.driver.rollback(rig.driver.releases()[1])
    assert rig.driver.wait_until_serving(new, timeout_s=30)
    assert clock.slept == 3


def test_the_token_is_not_sent_to_a_polling_url_on_another_host(
    token: str, make_target: Callable[..., Target], clock: FakeClock
) -> None:
    rig = azure_rig(make_target, clock, location_host="https://evil.example.test")
    with pytest.raises(DriverError, match=r"does not send the token there"):
        rig.driver.rollback(rig.driver.releases()[1])
    assert all(s.path.startswith("/subscriptions/") for s in rig.standin.seen)


def test_only_the_configured_slot_is_swapped_in(rig: Rig) -> None:
    with pytest.raises(DriverError, match=r"not that slot"):
        rig.driver.rollback(rig.driver.releases()[0])


def test_a_stopped_staging_slot_is_not_swapped_in(rig: Rig) -> None:
    rig.standin.state["staging"] = "Stopped"
    with pytest.raises(DriverError, match=r"staging .* is Stopped; start it"):
        rig.driver.rollback(rig.driver.releases()[1])


def test_another_operation_in_progress_is_a_409(rig: Rig) -> None:
    staging = rig.driver.releases()[1]
    rig.driver.rollback(staging)
    with pytest.raises(DriverError, match=r"409 Conflict .*another operation is in progress"):
        rig.driver.rollback(staging)


LOG_TOKEN = "pdtest-LOGTOKEN-9a8b7c6d5e4f"


@pytest.fixture
def logs_rig(
    token: str, make_target: Callable[..., Target], clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[AppServiceDriver, azure.LogAnalyticsStandIn]:  # fmt: skip
    monkeypatch.setenv("PD_TEST_LOG_TOKEN", LOG_TOKEN)
    arm = azure.AppServiceStandIn(token)
    analytics = azure.LogAnalyticsStandIn(LOG_TOKEN)
    host = httpx.URL(azure.LOG_ANALYTICS_URL).host

    def route(request: httpx.Request) -> httpx.Response:
        return (analytics if request.url.host == host else arm).handle(request)

    target = make_target(
        "azure", subscription_id=azure.SUB, resource_group=azure.RG, app_name=azure.APP,
        slot=azure.SLOT, token_env="PD_TEST_TOKEN", api_url=azure.API_URL,
        log_analytics_workspace_id=azure.WORKSPACE, log_analytics_url=azure.LOG_ANALYTICS_URL,
        log_token_env="PD_TEST_LOG_TOKEN",
    )  # fmt: skip
    driver = AppServiceDriver(target, transport=httpx.MockTransport(route), clock=clock,
                              sleep=clock.sleep)  # fmt: skip
    return driver, analytics


def test_logs_are_the_production_slot_s_console_lines_from_log_analytics(logs_rig) -> None:
    driver, analytics = logs_rig
    lines = driver.logs()
    assert [line.split(" ", 1)[1] for line in lines] == ["listening on 8000", "GET /api/health 200"]
    (asked,) = analytics.seen
    assert asked.authorized, "the Log Analytics token, not the ARM token"
    assert asked.path == f"/v1/workspaces/{azure.WORKSPACE}/query"
    assert asked.body["timespan"] == f"PT{LOG_WINDOW_S}S"
    assert asked.body["query"].startswith("AppServiceConsoleLogs")
    assert "take 200" in asked.body["query"]


def test_logs_keep_the_newest_rows_up_to_the_limit(logs_rig) -> None:
    driver, analytics = logs_rig
    assert [line.split(" ", 1)[1] for line in driver.logs(limit=1)] == ["GET /api/health 200"]
    assert "take 1" in analytics.seen[-1].body["query"]


def test_logs_need_a_workspace_and_say_how_to_get_one(rig: Rig) -> None:
    with pytest.raises(DriverUnavailable, match=r"log_analytics_workspace_id"):
        rig.driver.logs()


def test_logs_need_the_log_analytics_token(logs_rig, monkeypatch: pytest.MonkeyPatch) -> None:
    driver, _ = logs_rig
    monkeypatch.delenv("PD_TEST_LOG_TOKEN")
    with pytest.raises(DriverUnavailable, match=r"\$PD_TEST_LOG_TOKEN is not set.*loganalytics"):
        driver.logs()


@pytest.mark.parametrize(("answer", "said"), [
    (401, r"401 Unauthorized.*\$PD_TEST_LOG_TOKEN"),
    (404, r"404 Not Found.*log_analytics_workspace_id"),
    (503, r"failed with 503"),
    ("timeout", r"no answer from api.loganalytics.test within 2 s"),
])  # fmt: skip
def test_logs_log_analytics_refuses_are_a_driver_error(logs_rig, answer, said) -> None:
    driver, analytics = logs_rig
    analytics.fail(answer)
    with pytest.raises(DriverError, match=said) as caught:
        driver.logs()
    assert LOG_TOKEN not in str(caught.value)
    assert FAKE_TOKEN not in str(caught.value)
