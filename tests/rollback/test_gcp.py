"""The Cloud Run driver against the Cloud Run Admin API v2 stand-in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdeploy.config import Target
from postdeploy.rollback.base import DriverError, previous_good
from tests.rollback.rigs import Rig, gcp_rig
from tests.standins._base import FakeClock
from tests.standins.gcp import PROJECT, SERVICE, short


@pytest.fixture
def rig(token: str, make_target: Callable[..., Target], clock: FakeClock) -> Rig:
    return gcp_rig(make_target, clock)


def test_releases_are_revisions_newest_first_and_only_ready_ones_can_serve(rig: Rig) -> None:
    releases = rig.driver.releases()
    assert [r.id for r in releases] == [short(4), short(3), short(2), short(1)]
    assert [r.can_rollback for r in releases] == [True, False, True, True]
    assert releases[0].extra["images"] == ["us-docker.pkg.test/la/app:1.4"]
    assert rig.standin.seen[0].params == {"pageSize": "50"}


def test_current_follows_latest_ready_when_traffic_goes_to_latest(rig: Rig) -> None:
    assert rig.driver.current().id == short(4)


def test_previous_good_is_the_newest_earlier_ready_revision(rig: Rig) -> None:
    assert previous_good(rig.driver.releases(), rig.driver.current()).id == short(2)


def test_rollback_routes_all_traffic_to_the_revision_and_waits(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    new = rig.driver.rollback(to)
    patch = rig.standin.calls("PATCH")[0]
    assert patch.params == {"updateMask": "traffic"}
    assert patch.body == {"traffic": [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": short(2), "percent": 100}
    ]}  # fmt: skip
    assert new.id == short(2)
    assert new.extra["operation"].endswith("/operations/op-1")
    assert rig.serving == short(4), "not before the operation is done"
    assert rig.driver.wait_until_serving(new, timeout_s=30)
    assert rig.serving == short(2)
    assert rig.driver.current().id == short(2)


def test_split_traffic_is_not_rolled_back(rig: Rig) -> None:
    rig.standin.service["trafficStatuses"] = [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": short(4), "percent": 90},
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": short(2), "percent": 10},
    ]
    with pytest.raises(DriverError, match=r"split between revisions"):
        rig.driver.current()


def test_a_revision_that_is_not_ready_is_refused_before_any_call(rig: Rig) -> None:
    with pytest.raises(DriverError, match=r"not ready"):
        rig.driver.rollback(rig.driver.releases()[1])
    assert rig.standin.calls("PATCH") == []


def test_an_operation_in_progress_is_a_409(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    rig.driver.rollback(to)
    with pytest.raises(DriverError, match=r"409 Conflict"):
        rig.driver.rollback(to)


def test_an_unknown_service_is_a_404_naming_the_settings(
    token: str, make_target: Callable[..., Target], clock: FakeClock
) -> None:
    rig = gcp_rig(make_target, clock)
    rig.driver.target.settings["service"] = "other"  # type: ignore[index]
    with pytest.raises(DriverError, match=r"404 Not Found.*project, region and service"):
        rig.driver.current()


def test_logs_are_the_serving_revision_s_entries_of_the_window(rig: Rig) -> None:
    lines = rig.driver.logs()
    texts = [line.split(" ", 1)[1] for line in lines]
    assert texts == [
        "listening on 8080",
        '{"message": "request", "request_id": "pd-123"}',
        "GET https://la.test/api/health 200",
    ]
    asked = rig.standin.calls("POST")[-1]
    assert asked.path == "/v2/entries:list"
    assert asked.body["resourceNames"] == [f"projects/{PROJECT}"]
    assert asked.body["orderBy"] == "timestamp desc"
    assert 'resource.type="cloud_run_revision"' in asked.body["filter"]
    assert f'resource.labels.service_name="{SERVICE}"' in asked.body["filter"]
    assert f'resource.labels.revision_name="{short(4)}"' in asked.body["filter"]
    assert "timestamp>=" in asked.body["filter"]
    assert asked.authorized


def test_logs_keep_the_newest_entries_up_to_the_limit(rig: Rig) -> None:
    assert rig.driver.logs(limit=1)[0].endswith("GET https://la.test/api/health 200")
    assert rig.standin.calls("POST")[-1].body["pageSize"] == 1


def test_no_entries_is_no_lines_not_an_error(rig: Rig) -> None:
    rig.standin.log_entries.clear()
    assert rig.driver.logs() == []


@pytest.mark.parametrize(("answer", "said"), [
    (403, r"403 Forbidden.* may not do this"),
    (401, r"401 Unauthorized.*PD_TEST_TOKEN"),
    ("timeout", r"no answer from .* within 2 s"),
])  # fmt: skip
def test_logs_cloud_logging_refuses_are_a_driver_error(rig: Rig, token: str, answer, said) -> None:
    rig.standin.fail(answer, path_contains="entries:list", times=2)
    with pytest.raises(DriverError, match=said) as caught:
        rig.driver.logs()
    assert token not in str(caught.value)
