"""Monitoring validation - Metrics endpoint and performance monitoring: /metrics is Prometheus
exposition, carries the required families, and moves with the suite's own requests."""

from __future__ import annotations

import pytest

from postdeploy.contract import (
    METRIC_APP_INFO,
    METRIC_LATENCY,
    METRIC_REQUESTS,
    METRIC_ROUTE_LABEL,
    METRIC_SYNTHETIC_LABEL,
    METRIC_SYNTHETIC_VALUE,
    PATHS,
)
from postdeploy.expect import expect_status
from postdeploy.instances import check_each
from postdeploy.monitoring.prometheus import family_present, parse_exposition, sample_sum

#: The route the suite's synthetic requests go to, and the series of those requests only
#: (never a health checker's): the same as in conftest.py.
SYNTHETIC_PATH = PATHS.health
ROUTE = {METRIC_ROUTE_LABEL: SYNTHETIC_PATH, METRIC_SYNTHETIC_LABEL: METRIC_SYNTHETIC_VALUE}


def scrape(api, headers=None) -> dict:
    response = api.get(PATHS.metrics, headers=headers or {})
    expect_status(response, 200, what="the metrics endpoint")
    return parse_exposition(response.text, f"GET {PATHS.metrics}")


def test_metrics_endpoint_serves_prometheus_exposition(api, target, instance_routes):
    def exposition(route):
        response = api.get(PATHS.metrics, headers=route.headers)
        expect_status(response, 200, what="the metrics endpoint")
        content_type = response.headers.get("content-type", "")
        assert content_type.startswith("text/plain"), (
            f"GET {PATHS.metrics} content type is {content_type!r}, expected Prometheus text"
        )
        families = parse_exposition(response.text, f"GET {PATHS.metrics}")
        assert families, f"GET {PATHS.metrics} parsed, but holds no metric family: no data"

    check_each(instance_routes, exposition, in_flight=int(target.concurrency))


def test_required_metric_families_are_present(
    api, target, required_metric_families, instance_routes
):
    def present(route):
        families = scrape(api, route.headers)
        missing = [n for n in required_metric_families if not family_present(families, n)]
        assert not missing, (
            f"GET {PATHS.metrics} lacks the required metric families {missing} "
            f"(monitoring.metric_families); it has {sorted(families)}"
        )

    check_each(instance_routes, present, in_flight=int(target.concurrency))


# The counters are per instance: each check reads and moves one instance's, through its route.
def test_request_counters_increase_after_synthetic_requests(
    api, monitoring, send_synthetic, instance_routes
):
    sample = METRIC_REQUESTS

    def counts(route):
        before = sample_sum(scrape(api, route.headers), sample, **ROUTE) or 0.0
        count = int(monitoring.synthetic_requests)
        send_synthetic(api, count, "counter", route.headers)
        after = sample_sum(scrape(api, route.headers), sample, **ROUTE)
        assert after is not None, (
            f"GET {PATHS.metrics} has no {sample} sample for {ROUTE} after {count} synthetic "
            f"requests to {SYNTHETIC_PATH}: no data"
        )
        assert after >= before + count, (
            f"{sample}{ROUTE} went from {before:g} to {after:g} after {count} synthetic "
            f"requests to {SYNTHETIC_PATH}: the request counters do not move"
        )

    check_each(_addressed(instance_routes), counts)


def test_latency_histogram_records_the_synthetic_requests(
    api, monitoring, send_synthetic, instance_routes
):
    count_sample = f"{METRIC_LATENCY}_count"

    def records(route):
        before = sample_sum(scrape(api, route.headers), count_sample, **ROUTE) or 0.0
        count = int(monitoring.synthetic_requests)
        send_synthetic(api, count, "latency", route.headers)
        families = scrape(api, route.headers)
        after = sample_sum(families, count_sample, **ROUTE)
        assert after is not None, (
            f"GET {PATHS.metrics} has no {count_sample} sample for {ROUTE}: no latency histogram"
        )
        assert after >= before + count, (
            f"{count_sample}{ROUTE} went from {before:g} to {after:g} after {count} synthetic "
            f"requests to {SYNTHETIC_PATH}: their latency was not recorded"
        )
        slowest = sample_sum(families, f"{METRIC_LATENCY}_bucket", le="+Inf", **ROUTE)
        assert slowest == after, (
            f"{METRIC_LATENCY}_bucket{{le='+Inf'}}{ROUTE} is {slowest}, expected {after:g} "
            "(the histogram's buckets do not add up to its count)"
        )

    check_each(_addressed(instance_routes), records)


def test_metrics_name_the_serving_release(api, target, expected_version, instance_routes):
    if expected_version is None:
        pytest.skip("no expected version: pass --expect-version to check the serving release")

    def names_release(route):
        families = scrape(api, route.headers)
        serving = sample_sum(families, METRIC_APP_INFO, version=expected_version)
        assert serving == 1, (
            f"GET {PATHS.metrics}: {METRIC_APP_INFO} does not name release {expected_version!r} "
            f"as serving; it reports {_versions(families)}"
        )

    check_each(instance_routes, names_release, in_flight=int(target.concurrency))


def _addressed(routes):
    """Counters must be read from the instance that counted: without addressing, one try
    through the URL (a balancer may spread the reads over instances either way)."""
    return routes if any(route.headers for route in routes) else routes[:1]


def _versions(families: dict) -> list[str]:
    family = families.get(METRIC_APP_INFO)
    return [s.labels.get("version", "?") for s in family.samples] if family else []
