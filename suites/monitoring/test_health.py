"""Monitoring validation - Health checks: responding correctly (simple and comprehensive).

Each check only reads, so the instances are probed at once (at most the target's
``concurrency``)."""

from __future__ import annotations

import pytest

from postdeploy.contract import HEALTH_HEADER, PATHS
from postdeploy.expect import expect_fields, expect_status, json_body
from postdeploy.instances import check_each

#: Probes for the pass-rate check (operations plan: health check pass rate 100 %).
HEALTH_PROBES = 5


#: The health checks run first: a release that is down is found, and rolled back, at once.
pytestmark = pytest.mark.first


@pytest.mark.gating
def test_health_endpoint_reports_healthy(api, target, instance_routes):
    def healthy(route):
        response = api.get(PATHS.health, headers=route.headers)
        expect_status(response, 200, what="the health check")
        body = json_body(response)
        expect_fields(body, ("status", "version", "checks"), f"GET {PATHS.health}")
        assert body["status"] == "healthy", f"GET {PATHS.health} reports status {body['status']!r}"

    check_each(instance_routes, healthy, in_flight=int(target.concurrency))


@pytest.mark.gating
def test_every_dependency_check_is_healthy(api, target, instance_routes):
    def dependencies(route):
        response = api.get(PATHS.health, headers=route.headers)
        body = json_body(response)
        checks = body.get("checks") or {}
        assert checks, f"GET {PATHS.health} lists no dependency checks"
        unhealthy = {n: c for n, c in checks.items() if c.get("status") != "healthy"}
        assert not unhealthy, f"GET {PATHS.health}: unhealthy dependencies: {unhealthy}"
        header = response.headers.get(HEALTH_HEADER)
        assert header == "healthy", f"GET {PATHS.health}: header {HEALTH_HEADER} is {header!r}"

    check_each(instance_routes, dependencies, in_flight=int(target.concurrency))


@pytest.mark.gating
def test_health_reports_the_expected_version(
    api, target, expected_version, instance_routes, rollout
):
    if expected_version is None:
        pytest.skip("no expected version: pass --expect-version to check the serving release")
    if rollout is not None:
        assert rollout.done, f"{rollout.message} - at {api.base_url}"

    def version(route):
        serving = json_body(api.get(PATHS.health, headers=route.headers)).get("version")
        assert serving == expected_version, (
            f"version {serving!r} is serving at {api.base_url}, expected {expected_version!r}: "
            "the deploy did not land (or landed elsewhere)"
        )

    check_each(instance_routes, version, in_flight=int(target.concurrency))


def test_health_check_pass_rate(api, target):
    passed = 0
    for _ in range(HEALTH_PROBES):
        response = api.get(PATHS.health)
        passed += response.status_code == 200 and json_body(response).get("status") == "healthy"
    rate = passed / HEALTH_PROBES
    assert rate >= target.thresholds.health_pass_rate, (
        f"{passed} of {HEALTH_PROBES} health probes passed ({rate:.0%}); "
        f"required {target.thresholds.health_pass_rate:.0%}"
    )
