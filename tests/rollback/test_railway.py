"""The Railway driver against the Railway GraphQL stand-in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from postdeploy.config import Target
from postdeploy.rollback.base import LOG_WINDOW_S, DriverError, Release, previous_good
from postdeploy.rollback.railway import ROLLBACK_MUTATION
from tests.rollback.rigs import Rig, railway_rig
from tests.standins._base import FakeClock


@pytest.fixture
def rig(token: str, make_target: Callable[..., Target], clock: FakeClock) -> Rig:
    return railway_rig(make_target, clock)


def test_releases_are_the_deployments_newest_first_with_can_rollback(rig: Rig) -> None:
    releases = rig.driver.releases()
    assert [r.status for r in releases] == ["SUCCESS", "FAILED", "REMOVED", "REMOVED", "REMOVED"]
    assert [r.can_rollback for r in releases] == [True, False, False, True, True]
    assert releases[0].ref.startswith("ghcr.test/la@sha256:")
    assert releases[0].version == "05ab05ab05ab"
    query = rig.standin.seen[0].body
    assert "deployments(input: $input, first: $first)" in query["query"]
    assert query["variables"] == {
        "input": {"projectId": "proj-1", "serviceId": "svc-1", "environmentId": "env-1"},
        "first": 20,
    }


def test_previous_good_skips_what_railway_cannot_roll_back(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    assert to is not None
    assert to.id.startswith("d002")


def test_when_nothing_can_be_rolled_back_there_is_no_target(rig: Rig) -> None:
    for deployment in rig.standin.deployments:
        deployment["canRollback"] = False
    assert previous_good(rig.driver.releases(), rig.driver.current()) is None


def test_a_release_railway_cannot_roll_back_is_refused_before_any_call(rig: Rig) -> None:
    blocked = rig.driver.releases()[2]
    with pytest.raises(DriverError, match=r"cannot be rolled back \(canRollback is false"):
        rig.driver.rollback(blocked)
    assert all("deploymentRollback" not in s.body["query"] for s in rig.standin.seen)


def test_rollback_runs_the_boolean_mutation_and_waits_for_success(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    new = rig.driver.rollback(to)
    mutation = next(s.body for s in rig.standin.seen if "deploymentRollback" in s.body["query"])
    assert mutation == {"query": ROLLBACK_MUTATION, "variables": {"id": to.id}}
    assert new.id.startswith("d006")
    assert new.status == "DEPLOYING"
    assert new.ref == to.ref
    assert rig.driver.wait_until_serving(new, timeout_s=30)
    assert rig.serving == to.ref
    assert rig.driver.current().id == new.id


def test_a_rollback_whose_deployment_does_not_show_yet_is_found_while_waiting(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    rig.driver._before = {d["id"] for d in rig.standin.deployments}
    pending = Release(id=to.id, ref=to.ref, status="QUEUED", extra={"pending": True})
    rig.standin._rollback(to.id)
    assert rig.driver.wait_until_serving(pending, timeout_s=30)


def test_a_crashed_rollback_deployment_ends_the_wait(rig: Rig) -> None:
    new = rig.driver.rollback(previous_good(rig.driver.releases(), rig.driver.current()))
    rig.standin.deployments[0]["status"] = "CRASHED"
    with pytest.raises(DriverError, match=r"ended with status CRASHED"):
        rig.driver.wait_until_serving(new, timeout_s=30)


def test_a_graphql_error_answer_is_a_driver_error(rig: Rig) -> None:
    rig.standin.fail(200, body={"errors": [{"message": "Project not found"}], "data": None})
    with pytest.raises(DriverError, match=r"found nothing .*project_id"):
        rig.driver.releases()


def test_logs_are_the_current_deployment_s_log_lines(rig: Rig) -> None:
    assert rig.driver.logs(limit=1) == ["2026-02-05T09:00:02Z GET /api/health 200"]
    asked = rig.standin.seen[-1].body
    called = "deploymentLogs(deploymentId: $deploymentId, limit: $limit, startDate: $startDate)"
    assert called in asked["query"]
    variables = asked["variables"]
    assert variables["deploymentId"] == rig.driver.current().id
    assert variables["limit"] == 1
    since = dt.datetime.fromisoformat(variables["startDate"].replace("Z", "+00:00"))
    window = dt.datetime.now(dt.UTC) - since
    assert (
        dt.timedelta(seconds=LOG_WINDOW_S - 60) < window < dt.timedelta(seconds=LOG_WINDOW_S + 60)
    )


def test_logs_railway_refuses_are_a_driver_error(rig: Rig) -> None:
    rig.standin.fail(200, body={"errors": [{"message": "Not Authorized"}], "data": None},
                     body_contains="deploymentLogs")  # fmt: skip
    with pytest.raises(DriverError, match=r"reading the logs of deployment .* was refused"):
        rig.driver.logs()


def test_logs_of_an_unreachable_railway_are_a_driver_error(rig: Rig) -> None:
    rig.standin.fail("timeout", body_contains="deploymentLogs", times=2)
    with pytest.raises(DriverError, match=r"no answer from .* within"):
        rig.driver.logs()
