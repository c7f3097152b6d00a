"""The lifecycle hooks of the driver protocol on the platforms postdeploy only talks to.

They do nothing: a run neither deploys nor stops a cloud deployment, trusts no CA of the
platform's, and finds no monitoring service run by the platform. (The local platform, which
postdeploy runs itself, is tested against a real deployment in tests/test_local_platform.py.)
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from postdeploy.config import Target
from postdeploy.rollback import DRIVERS, driver_for, lifecycle_of
from postdeploy.rollback.base import LifecycleDefaults, PlatformLifecycle
from tests.rollback.test_registry import SETTINGS


@pytest.mark.parametrize("platform", sorted(SETTINGS))
def test_a_platform_postdeploy_only_talks_to_has_nothing_to_prepare_or_finish(
    platform: str, make_target: Callable[..., Target]
) -> None:
    target = make_target(platform, **SETTINGS[platform])
    driver = driver_for(target)

    assert isinstance(driver, PlatformLifecycle)
    assert driver.prepare("run-1", "1.2.3") is target
    assert driver.finish("run-1") is None
    assert driver.client_target() is target
    assert driver.services() is None
    assert driver.current_app_version() is None


def test_the_command_driver_knows_the_app_version_its_releases_command_prints(
    tmp_path: Path, make_target: Callable[..., Target]
) -> None:
    releases = tmp_path / "releases.json"
    releases.write_text(json.dumps([{"id": "r2", "version": "2.4.0", "current": True}]))
    py = shlex.quote(sys.executable)
    target = make_target(
        "command",
        rollback_command="true",
        releases_command=f"{py} -S -c 'import sys; print(open(sys.argv[1]).read())' {releases}",
    )

    assert driver_for(target).current_app_version() == "2.4.0"


def test_a_releases_command_that_fails_leaves_the_version_unknown(
    make_target: Callable[..., Target],
) -> None:
    target = make_target("command", rollback_command="true", releases_command="false")

    assert driver_for(target).current_app_version() is None


def test_a_driver_that_cannot_be_built_here_has_the_default_lifecycle(
    monkeypatch: pytest.MonkeyPatch, make_target: Callable[..., Target]
) -> None:
    target = make_target("fly", **SETTINGS["fly"])
    monkeypatch.setitem(DRIVERS, "fly", "postdeploy_no_such_module:FlyDriver")

    lifecycle = lifecycle_of(target)

    assert type(lifecycle) is LifecycleDefaults
    assert lifecycle.prepare("run-1", None) is target
    assert lifecycle.services() is None
