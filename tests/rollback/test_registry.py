"""Each platform of targets.toml has a registered driver that speaks the protocol."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdeploy.config import PLATFORM_KEYS, Target
from postdeploy.rollback import DRIVERS, driver_for
from postdeploy.rollback.base import RollbackDriver

SETTINGS = {
    "fly": {"app": "a"},
    "render": {"service_id": "srv-1"},
    "railway": {"project_id": "p", "service_id": "s", "environment_id": "e"},
    "aws": {"cluster": "c", "service": "s", "region": "eu-west-1"},
    "gcp": {"project": "p", "region": "r", "service": "s"},
    "azure": {"subscription_id": "s", "resource_group": "g", "app_name": "a"},
    "command": {"rollback_command": "true"},
}


def test_every_platform_has_a_driver() -> None:
    assert set(PLATFORM_KEYS) <= set(DRIVERS)


@pytest.mark.parametrize("platform", sorted(SETTINGS))
def test_driver_for_builds_a_protocol_driver_without_calling_anything(
    platform: str, make_target: Callable[..., Target]
) -> None:
    driver = driver_for(make_target(platform, **SETTINGS[platform]))
    assert isinstance(driver, RollbackDriver)
    assert driver.platform == platform
    assert platform in repr(driver) or type(driver).__name__ in repr(driver)
