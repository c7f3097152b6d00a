"""The Fly.io driver's instances, from the Machines API stand-in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdeploy.config import Target
from postdeploy.rollback.base import DriverError
from postdeploy.rollback.fly import FORCE_INSTANCE_HEADER, FlyDriver
from tests.rollback.conftest import assert_no_secret
from tests.standins.fly_machines import API_URL, FlyMachinesStandIn, machine
from tests.standins.flyctl import APP


@pytest.fixture
def standin(token: str) -> FlyMachinesStandIn:
    return FlyMachinesStandIn(
        token,
        APP,
        [
            machine("e784079b449483", release=5),
            machine("3d8d9ed6b70128", release=4),
            machine("91852ed4a6e358", state="stopped"),
            machine("148e1a2b7c9d11", group="worker"),
        ],
    )


@pytest.fixture
def driver(standin: FlyMachinesStandIn, make_target: Callable[..., Target]) -> FlyDriver:
    target = make_target("fly", app=APP, token_env="PD_TEST_TOKEN", machines_api_url=API_URL)
    return FlyDriver(target, machines_transport=standin.transport())


def test_instances_are_the_started_machines_of_the_app_process_group(
    driver: FlyDriver, standin: FlyMachinesStandIn
) -> None:
    instances = driver.instances()
    assert [i.id for i in instances] == ["e784079b449483", "3d8d9ed6b70128"]
    assert [i.version for i in instances] == ["v5", "v4"]
    assert instances[0].extra["region"] == "ams"
    assert standin.calls("GET")[0].path == f"/v1/apps/{APP}/machines"
    assert standin.calls("GET")[0].authorized


def test_each_instance_is_addressed_with_fly_force_instance_id(driver: FlyDriver) -> None:
    for instance in driver.instances():
        assert instance.addressable
        assert instance.headers == {FORCE_INSTANCE_HEADER: instance.id}


def test_an_unknown_app_is_a_driver_error_naming_the_setting(
    token: str, make_target: Callable[..., Target], standin: FlyMachinesStandIn
) -> None:
    target = make_target("fly", app="nope", token_env="PD_TEST_TOKEN", machines_api_url=API_URL)
    with pytest.raises(DriverError, match=r"check app in targets\.toml") as failure:
        FlyDriver(target, machines_transport=standin.transport()).instances()
    assert_no_secret(failure.value)


def test_a_rejected_token_is_a_driver_error_without_the_token(
    driver: FlyDriver, standin: FlyMachinesStandIn
) -> None:
    standin.fail(401)
    with pytest.raises(DriverError, match=r"401 Unauthorized.*\$PD_TEST_TOKEN") as failure:
        driver.instances()
    assert_no_secret(failure.value)


def test_a_machines_api_that_times_out_is_a_driver_error(
    driver: FlyDriver, standin: FlyMachinesStandIn
) -> None:
    standin.fail("timeout", times=2)
    with pytest.raises(DriverError, match="no answer"):
        driver.instances()
