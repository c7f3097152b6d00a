"""A REST driver wired to its platform stand-in, for the tests every such driver shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from postdeploy.config import Target
from postdeploy.rollback.azure import AppServiceDriver
from postdeploy.rollback.gcp import CloudRunDriver
from postdeploy.rollback.railway import RailwayDriver
from postdeploy.rollback.render import RenderDriver
from tests.standins import azure, gcp, railway, render
from tests.standins._base import FakeClock, StandIn


@dataclass
class Rig:
    driver: Any
    standin: Any

    @property
    def serving(self) -> Any:
        return self.standin.serving


def render_rig(make_target: Callable[..., Target], clock: FakeClock, **kw: Any) -> Rig:
    standin = render.RenderStandIn("pdtest-TOKEN-s3cr3t-7f3a9c1e5b", "srv-la0001", **kw)
    target = make_target(
        "render", service_id="srv-la0001", token_env="PD_TEST_TOKEN", api_url=render.API_URL
    )
    driver = RenderDriver(target, transport=standin.transport(), clock=clock, sleep=clock.sleep)
    return Rig(driver, standin)


def railway_rig(make_target: Callable[..., Target], clock: FakeClock, **kw: Any) -> Rig:
    standin = railway.RailwayStandIn("pdtest-TOKEN-s3cr3t-7f3a9c1e5b", **kw)
    target = make_target(
        "railway", project_id=railway.PROJECT, service_id=railway.SERVICE,
        environment_id=railway.ENVIRONMENT, token_env="PD_TEST_TOKEN", api_url=railway.API_URL,
    )  # fmt: skip
    driver = RailwayDriver(target, transport=standin.transport(), clock=clock, sleep=clock.sleep)
    return Rig(driver, standin)


def gcp_rig(make_target: Callable[..., Target], clock: FakeClock, **kw: Any) -> Rig:
    standin = gcp.CloudRunStandIn("pdtest-TOKEN-s3cr3t-7f3a9c1e5b", **kw)
    target = make_target(
        "gcp", project=gcp.PROJECT, region=gcp.REGION, service=gcp.SERVICE,
        token_env="PD_TEST_TOKEN", api_url=gcp.API_URL,
    )  # fmt: skip
    driver = CloudRunDriver(target, transport=standin.transport(), clock=clock, sleep=clock.sleep)
    return Rig(driver, standin)


def azure_rig(make_target: Callable[..., Target], clock: FakeClock, **kw: Any) -> Rig:
    standin = azure.AppServiceStandIn("pdtest-TOKEN-s3cr3t-7f3a9c1e5b", **kw)
    target = make_target(
        "azure", subscription_id=azure.SUB, resource_group=azure.RG, app_name=azure.APP,
        slot=azure.SLOT, token_env="PD_TEST_TOKEN", api_url=azure.API_URL,
    )  # fmt: skip
    driver = AppServiceDriver(target, transport=standin.transport(), clock=clock, sleep=clock.sleep)
    return Rig(driver, standin)


RIGS: dict[str, Callable[..., Rig]] = {
    "render": render_rig,
    "railway": railway_rig,
    "gcp": gcp_rig,
    "azure": azure_rig,
}

__all__ = ["RIGS", "Rig", "StandIn"]
