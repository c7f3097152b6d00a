"""The Fly.io driver against a fake flyctl that records how it was called."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from postdeploy.config import Target
from postdeploy.rollback.base import DriverError, DriverUnavailable, previous_good
from postdeploy.rollback.fly import FlyDriver
from tests.standins._base import FakeClock
from tests.standins.flyctl import APP, FakeFlyctl, release

IMAGE = f"registry.fly.io/{APP}:deployment-%02d"


@pytest.fixture
def flyctl(tmp_path: Path, token: str) -> FakeFlyctl:
    return FakeFlyctl(tmp_path / "bin", token)


@pytest.fixture
def driver(flyctl: FakeFlyctl, make_target: Callable[..., Target], clock: FakeClock) -> FlyDriver:
    target = make_target(
        "fly", app=APP, token_env="PD_TEST_TOKEN", flyctl=str(flyctl.executable), timeout_s=5.0
    )
    return FlyDriver(target, clock=clock, sleep=clock.sleep)


def test_releases_come_from_fly_releases_json_newest_first(
    driver: FlyDriver, flyctl: FakeFlyctl
) -> None:
    releases = driver.releases()
    assert [r.version for r in releases] == ["v4", "v3", "v2", "v1"]
    assert releases[0].ref == IMAGE % 4
    assert releases[0].status == "complete"
    assert releases[0].id == "rel_0004"
    assert releases[0].created_at == "2026-05-04T12:00:00Z"
    assert [r.can_rollback for r in releases] == [True, False, True, True]
    assert flyctl.argvs() == [["releases", "--app", APP, "--image", "--json"]]


def test_the_token_reaches_flyctl_in_its_environment_only(
    driver: FlyDriver, flyctl: FakeFlyctl
) -> None:
    driver.releases()
    (call,) = flyctl.calls()
    assert call["token_set"]
    assert call["token_ok"]
    assert call["no_color"]
    assert not call["stdin_is_tty"]
    assert all("pdtest" not in arg for arg in call["argv"])


def test_current_is_the_version_fly_status_reports(driver: FlyDriver, flyctl: FakeFlyctl) -> None:
    assert driver.current().version == "v4"
    assert ["status", "--app", APP, "--json"] in flyctl.argvs()


def test_previous_good_skips_the_failed_release(driver: FlyDriver) -> None:
    assert previous_good(driver.releases(), driver.current()).version == "v2"


def test_plan_is_fly_deploy_of_the_old_image(
    driver: FlyDriver, flyctl: FakeFlyctl, no_secret_anywhere: Callable[..., None]
) -> None:
    to = driver.releases()[2]
    plan = [str(call) for call in driver.plan(to)]
    assert plan[0].startswith(f"{flyctl.executable} deploy --app {APP} --image {IMAGE % 2} ")
    assert "FLY_API_TOKEN from $PD_TEST_TOKEN" in plan[0]
    assert len(flyctl.calls()) == 1, "plan() runs nothing"
    no_secret_anywhere(*plan)


def test_rollback_redeploys_the_last_good_image_and_waits(
    driver: FlyDriver, flyctl: FakeFlyctl, no_secret_anywhere: Callable[..., None]
) -> None:
    to = previous_good(driver.releases(), driver.current())
    new = driver.rollback(to)
    assert ["deploy", "--app", APP, "--image", IMAGE % 2] in flyctl.argvs()
    assert new.version == "v5"
    assert new.ref == IMAGE % 2
    assert new.status == "complete"
    assert driver.wait_until_serving(new, timeout_s=30)
    assert flyctl.serving == IMAGE % 2
    assert driver.current().version == "v5"
    no_secret_anywhere(new, *driver.logs())


def test_a_redeploy_that_fails_on_the_platform_ends_the_wait(
    driver: FlyDriver, flyctl: FakeFlyctl
) -> None:
    flyctl.update(deploy_status="failed")
    to = previous_good(driver.releases(), driver.current())
    new = driver.rollback(to)
    with pytest.raises(DriverError, match=r"ended failed \(v5\)"):
        driver.wait_until_serving(new, timeout_s=30)


@pytest.mark.parametrize(
    ("stderr", "advice"),
    [
        ("Error: You must be authenticated to view this.", r"\$PD_TEST_TOKEN is missing"),
        ('Error: Could not find App "la-test-app"', r"check app in targets.toml"),
        ("Error: 429 Too Many Requests: rate limit exceeded", r"rate limited"),
        ("Error: lease currently held by another deploy", r"another deploy holds"),
        ("Error: 502 Bad Gateway", r"read flyctl's message"),
    ],
)
def test_a_failing_flyctl_is_a_driver_error_with_its_message_and_advice(
    driver: FlyDriver,
    flyctl: FakeFlyctl,
    stderr: str,
    advice: str,
    no_secret_anywhere: Callable[..., None],
) -> None:
    flyctl.update(fail={"deploy": {"exit": 1, "stderr": stderr}})
    with pytest.raises(DriverError, match=advice) as caught:
        driver.rollback(driver.releases()[2])
    assert stderr.split(": ", 1)[1] in str(caught.value)
    assert "exited 1" in str(caught.value)
    no_secret_anywhere(caught.value)


def test_a_token_flyctl_echoes_is_scrubbed(
    driver: FlyDriver, flyctl: FakeFlyctl, token: str
) -> None:
    flyctl.update(fail={"releases": {"exit": 1, "stderr": f"Error: bad token {token}"}})
    with pytest.raises(DriverError) as caught:
        driver.releases()
    assert token not in str(caught.value)
    assert "bad token" in str(caught.value)


def test_a_wrong_token_is_named(
    driver: FlyDriver, flyctl: FakeFlyctl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_TEST_TOKEN", "pdtest-WRONG-0000000000")
    with pytest.raises(DriverError, match=r"\$PD_TEST_TOKEN"):
        driver.releases()


def test_a_hanging_flyctl_is_stopped_at_its_timeout(
    flyctl: FakeFlyctl, make_target: Callable[..., Target]
) -> None:
    flyctl.update(hang=["releases"])
    target = make_target(
        "fly", app=APP, token_env="PD_TEST_TOKEN", flyctl=str(flyctl.executable), timeout_s=0.2
    )
    with pytest.raises(DriverError, match=r"did not finish within 0.6 s and was stopped"):
        FlyDriver(target).releases()


def test_preflight_needs_flyctl_and_the_token(
    flyctl: FakeFlyctl,
    make_target: Callable[..., Target],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    good = make_target("fly", app=APP, token_env="PD_TEST_TOKEN", flyctl=str(flyctl.executable))
    FlyDriver(good).preflight()
    missing = make_target("fly", app=APP, token_env="PD_TEST_TOKEN", flyctl="no-such-flyctl")
    with pytest.raises(DriverUnavailable, match=r"'no-such-flyctl' was not found; install"):
        FlyDriver(missing).preflight()
    monkeypatch.delenv("PD_TEST_TOKEN")
    with pytest.raises(DriverUnavailable, match=r"\$PD_TEST_TOKEN is not set"):
        FlyDriver(good).preflight()
    assert flyctl.calls() == []


def test_flyctl_is_found_on_path_by_default(
    flyctl: FakeFlyctl, make_target: Callable[..., Target], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{flyctl.directory}:/usr/bin:/bin")
    driver = FlyDriver(make_target("fly", app=APP, token_env="PD_TEST_TOKEN"))
    driver.preflight()
    assert driver.current().version == "v4"


def test_a_release_without_an_image_cannot_be_redeployed(
    driver: FlyDriver, flyctl: FakeFlyctl
) -> None:
    flyctl.update(releases=[release(1, image=""), release(2)], current=2)
    assert previous_good(driver.releases(), driver.current()) is None
    with pytest.raises(DriverError, match=r"has no image reference"):
        driver.rollback(driver.releases()[1])


def test_logs_are_fly_logs_json_without_tailing(driver: FlyDriver, flyctl: FakeFlyctl) -> None:
    lines = driver.logs(limit=5)
    assert [line.split(" ", 1)[1] for line in lines] == ["line 1", "line 2"], "in the window"
    assert lines[0].endswith("Z line 1")
    assert flyctl.argvs() == [["logs", "--app", APP, "--no-tail", "--json"]]


def test_logs_keep_the_newest_lines_up_to_the_limit(driver: FlyDriver) -> None:
    assert [line.split(" ", 1)[1] for line in driver.logs(limit=1)] == ["line 2"]


def test_logs_that_flyctl_cannot_read_are_a_driver_error_without_the_token(
    driver: FlyDriver, flyctl: FakeFlyctl, token: str
) -> None:
    flyctl.update(fail={"logs": {"exit": 1, "stderr": f"Error: unauthorized {token}"}})
    with pytest.raises(DriverError, match=r"reading the logs of") as caught:
        driver.logs()
    assert token not in str(caught.value)
    assert "FLY_API_TOKEN" in str(caught.value) or "PD_TEST_TOKEN" in str(caught.value)


def test_logs_that_are_not_json_lines_are_a_driver_error(
    driver: FlyDriver, flyctl: FakeFlyctl, tmp_path: Path
) -> None:
    plain = tmp_path / "plain-fly"
    plain.write_text("#!/bin/sh\necho 'not json'\n")
    plain.chmod(0o755)
    driver.flyctl = str(plain)
    with pytest.raises(DriverError, match=r"not JSON; is .* recent enough to know --json"):
        driver.logs()


def test_logs_of_a_hanging_flyctl_are_bounded(
    flyctl: FakeFlyctl, make_target: Callable[..., Target]
) -> None:
    flyctl.update(hang=["logs"])
    target = make_target(
        "fly", app=APP, token_env="PD_TEST_TOKEN", flyctl=str(flyctl.executable), timeout_s=0.2
    )
    with pytest.raises(DriverError, match=r"did not finish within 0.6 s and was stopped"):
        FlyDriver(target).logs()


def test_choosing_a_target_costs_two_flyctl_runs(driver: FlyDriver, flyctl: FakeFlyctl) -> None:
    current = driver.current()
    assert previous_good(driver.releases(), current).version == "v2"
    assert [argv[0] for argv in flyctl.argvs()] == ["status", "releases"]
