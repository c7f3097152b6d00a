"""The Render driver against the Render API stand-in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdeploy.config import Target
from postdeploy.rollback.base import LOG_WINDOW_S, DriverError, previous_good
from postdeploy.rollback.render import RenderDriver
from tests.rollback.rigs import Rig, render_rig
from tests.standins._base import FakeClock
from tests.standins.render import API_URL, OWNER, RenderStandIn


@pytest.fixture
def rig(token: str, make_target: Callable[..., Target], clock: FakeClock) -> Rig:
    return render_rig(make_target, clock)


def test_releases_are_the_service_s_deploys_newest_first(rig: Rig) -> None:
    releases = rig.driver.releases()
    assert [r.id for r in releases] == ["dep-0004", "dep-0003", "dep-0002", "dep-0001"]
    assert releases[0].ref == "registry.test/la:1.4"
    assert releases[0].status == "live"
    assert releases[0].version == "04c0ffeec0ff"
    assert releases[0].extra["commit_message"] == "release 4"
    assert [r.can_rollback for r in releases] == [True, False, True, True]
    assert rig.standin.calls("GET")[0].params == {"limit": "20"}


def test_current_is_the_live_deploy_and_previous_good_skips_the_failed_build(rig: Rig) -> None:
    current = rig.driver.current()
    assert current.id == "dep-0004"
    assert previous_good(rig.driver.releases(), current).id == "dep-0002"


def test_plan_is_the_exact_rollback_call(rig: Rig) -> None:
    to = rig.driver.releases()[2]
    plan = [str(call) for call in rig.driver.plan(to)]
    assert plan[0] == (
        'POST https://api.render.test/v1/services/srv-la0001/rollback {"deployId": "dep-0002"} '
        "(Authorization: Bearer $PD_TEST_TOKEN)"
    )
    assert "until its status is live" in plan[1]


def test_rollback_puts_the_old_deploy_back_and_waits_until_it_is_live(
    rig: Rig, clock: FakeClock
) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    new = rig.driver.rollback(to)
    assert rig.standin.calls("POST")[0].body == {"deployId": "dep-0002"}
    assert new.id == "dep-0005"
    assert new.status == "update_in_progress"
    assert new.ref == "registry.test/la:1.2"
    assert rig.driver.wait_until_serving(new, timeout_s=30) is True
    assert rig.serving == "registry.test/la:1.2"
    assert rig.driver.current().id == "dep-0005"


def test_a_rollback_deploy_that_fails_ends_the_wait_with_a_driver_error(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    new = rig.driver.rollback(to)
    rig.standin.deploys[0]["status"] = "update_failed"
    with pytest.raises(DriverError, match=r"dep-0005 .* ended with status update_failed"):
        rig.driver.wait_until_serving(new, timeout_s=30)


def test_a_deploy_that_never_went_live_is_not_rolled_back_to(rig: Rig) -> None:
    failed = rig.driver.releases()[1]
    with pytest.raises(DriverError, match=r"never went live"):
        rig.driver.rollback(failed)
    assert rig.standin.calls("POST") == []


def test_a_deploy_in_progress_is_a_409_with_advice(rig: Rig) -> None:
    rig.standin.deploys[0]["status"] = "build_in_progress"
    with pytest.raises(DriverError, match=r"409 Conflict .*in progress.*wait"):
        rig.driver.rollback(rig.driver.releases()[2])


def test_no_live_deploy_is_a_driver_error(rig: Rig) -> None:
    rig.standin.deploys[0]["status"] = "deactivated"
    with pytest.raises(DriverError, match=r"no live deploy"):
        rig.driver.current()


def test_an_unknown_service_is_a_404_that_names_service_id(
    token: str, make_target: Callable[..., Target], clock: FakeClock
) -> None:
    rig = render_rig(make_target, clock)
    rig.standin.service_id = "srv-other"
    with pytest.raises(DriverError, match=r"404 Not Found.*'srv-la0001'.*service_id"):
        rig.driver.releases()


def test_logs_are_the_service_s_lines_of_the_window_oldest_first(rig: Rig) -> None:
    lines = rig.driver.logs()
    texts = [line.split(" ", 1)[1] for line in lines]
    assert texts == ["listening on :10000", "GET /api/health 200"]
    asked = rig.standin.calls("GET")[-1]
    assert asked.path == "/v1/logs"
    assert asked.params["ownerId"] == OWNER, "found through GET /services/{id}"
    assert asked.params["resource"] == "srv-la0001"
    assert asked.params["direction"] == "backward"
    assert int(asked.params["endTime"]) - int(asked.params["startTime"]) == LOG_WINDOW_S
    assert asked.params["limit"] == "100"


def test_logs_keep_the_newest_up_to_the_limit(rig: Rig) -> None:
    assert [line.split(" ", 1)[1] for line in rig.driver.logs(limit=1)] == ["GET /api/health 200"]
    assert rig.standin.calls("GET")[-1].params["limit"] == "1"


def test_logs_use_the_configured_owner_without_asking(
    token: str, make_target: Callable[..., Target], clock: FakeClock
) -> None:
    standin = RenderStandIn(token, "srv-la0001")
    target = make_target("render", service_id="srv-la0001", token_env="PD_TEST_TOKEN",
                         api_url=API_URL, owner_id=OWNER)  # fmt: skip
    driver = RenderDriver(target, transport=standin.transport(), clock=clock, sleep=clock.sleep)
    assert len(driver.logs()) == 2
    assert [s.path for s in standin.seen] == ["/v1/logs"]


def test_logs_render_refuses_are_a_driver_error_without_the_token(rig: Rig, token: str) -> None:
    rig.standin.fail(403, path_contains="/logs")
    with pytest.raises(DriverError, match=r"reading the logs of service srv-la0001 .* 403") as err:
        rig.driver.logs()
    assert token not in str(err.value)


def test_logs_of_a_render_that_does_not_answer_are_bounded(rig: Rig) -> None:
    rig.standin.fail("timeout", path_contains="/logs", times=2)
    with pytest.raises(DriverError, match=r"no answer from .* within 2 s"):
        rig.driver.logs()
