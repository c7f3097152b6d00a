"""Which local platform serves a target: the single process or the production shape.

Every caller that needs the local platform of a target (fixtures, the CLI, the rollback
driver, monitoring) asks :func:`platform_for`, so the shape is decided in one place, from the
target's ``shape`` key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from postdeploy.config import LOCAL_SHAPES
from postdeploy.local.platform import LocalPlatform

if TYPE_CHECKING:
    from postdeploy.config import Target

SHAPES = LOCAL_SHAPES
SINGLE, PRODUCTION = SHAPES


def platform_for(target: Target, state_dir: Path | None = None) -> LocalPlatform:
    """The local platform of ``target`` (a target with ``platform = "local"``)."""
    if target.settings.get("shape", SINGLE) == PRODUCTION:
        from postdeploy.local.production import ProductionPlatform

        return ProductionPlatform(
            target.url,
            instances=int(target.settings.get("instances", 2)),
            port_base=int(target.settings.get("port_base", 19450)),
            prometheus_url=target.monitoring.prometheus_url,
            alertmanager_url=target.monitoring.alertmanager_url,
            app_limits={
                "LA_RATE_LIMIT_REGISTER": str(target.settings.get("rate_limit_register", "")),
                "LA_RATE_LIMIT_LOGIN": str(target.settings.get("rate_limit_login", "")),
            },
            state_dir=state_dir,
        )
    return LocalPlatform(target.url, state_dir=state_dir)
