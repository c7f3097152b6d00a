"""Rollback drivers, one module per platform, and the registry that picks one for a target.

Drivers are imported lazily: a run against Fly.io never imports boto3.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from postdeploy.rollback.base import (
    DriverError,
    DriverUnavailable,
    LifecycleDefaults,
    PlatformLifecycle,
    Release,
    RollbackDriver,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from postdeploy.config import Target

__all__ = [
    "DRIVERS",
    "DriverError",
    "DriverUnavailable",
    "Release",
    "RollbackDriver",
    "driver_for",
    "lifecycle_of",
    "preflight",
]

#: platform -> "module:Class" of its driver.
DRIVERS: dict[str, str] = {
    "local": "postdeploy.rollback.local:LocalDriver",
    "fly": "postdeploy.rollback.fly:FlyDriver",
    "render": "postdeploy.rollback.render:RenderDriver",
    "railway": "postdeploy.rollback.railway:RailwayDriver",
    "aws": "postdeploy.rollback.aws:EcsDriver",
    "gcp": "postdeploy.rollback.gcp:CloudRunDriver",
    "azure": "postdeploy.rollback.azure:AppServiceDriver",
    "command": "postdeploy.rollback.command:CommandDriver",
}


def driver_for(target: Target) -> RollbackDriver:
    """The rollback driver for ``target``; raises :class:`DriverUnavailable` if there is none."""
    spec = DRIVERS.get(target.platform)
    if spec is None:
        raise DriverUnavailable(
            f"target {target.name!r}: no rollback driver for platform {target.platform!r}; "
            f"available: {', '.join(sorted(DRIVERS))}"
        )
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverUnavailable(
            f"target {target.name!r}: the {target.platform} driver needs {exc.name!r}; "
            "install it with: pip install 'postdeploy[platforms]'"
        ) from None
    driver: RollbackDriver = getattr(module, class_name)(target)
    return driver


def lifecycle_of(target: Target) -> PlatformLifecycle:
    """The lifecycle hooks of ``target``'s platform (deploy before a run, stop after, its CA,
    its app version, its monitoring services): its driver's, or the defaults - nothing to do -
    when the driver cannot be built here (its optional package is not installed)."""
    try:
        return driver_for(target)
    except DriverUnavailable:
        return LifecycleDefaults(target)


def preflight(targets: Iterable[Target], mode: str, command: str = "") -> None:
    """Before anything runs: with rollback ``mode`` other than off, every target needs a
    working driver. Raises :class:`DriverUnavailable` saying what to fix."""
    if mode == "off":
        return
    for target in targets:
        try:
            driver_for(target).preflight()
        except DriverUnavailable as exc:
            raise DriverUnavailable(
                f"{command}--rollback {mode} cannot work: {exc}. "
                "Fix the target's rollback settings or run with --rollback off"
            ) from None
