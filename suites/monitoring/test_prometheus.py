"""Monitoring validation - Prometheus: the target is scraped, the alert rules are active, no
critical alert fires, and the suite's own traffic (and its latency) shows up in queries."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from postdeploy.gate import TIMEOUT
from postdeploy.monitoring.prometheus import (
    MetricsGap,
    PrometheusError,
    parse_time,
    wait_for_increase,
)

#: Rule evaluations to wait past an alert's `for` before trusting a harness-started server.
SETTLE_EVALUATIONS = 2
SETTLE_POLL_S = 0.25


@pytest.mark.gating
def test_prometheus_scrapes_the_target(prometheus, prometheus_scrape):
    targets = prometheus.api.job_targets(prometheus.job) or prometheus_scrape.targets
    down = [
        f"{t.get('scrapeUrl')}: {t.get('health')} ({t.get('lastError') or 'no error'})"
        for t in targets
        if t.get("health") != "up"
    ]
    assert not down, (
        f"{prometheus.api.describe('/api/v1/targets')}: scrape job {prometheus.job!r} is not "
        f"up: {'; '.join(down)}"
    )


def test_required_alert_rules_are_loaded(prometheus, required_alert_rules):
    rules = prometheus.api.alerting_rules()
    loaded = {rule.get("name") for rule in rules}
    missing = [name for name in required_alert_rules if name not in loaded]
    assert not missing, (
        f"{prometheus.api.describe('/api/v1/rules', {'type': 'alert'})}: required alerting "
        f"rules not loaded: {missing} (monitoring.required_alert_rules); loaded: "
        f"{sorted(n for n in loaded if n) or 'none'}"
    )
    broken = [
        f"{rule['name']}: {rule.get('lastError')}"
        for rule in rules
        if rule.get("name") in required_alert_rules and rule.get("health") == "err"
    ]
    assert not broken, f"alerting rules fail to evaluate: {'; '.join(broken)}"


def _visible_within(scrape, monitoring) -> float:
    """New samples must show within a few scrape intervals (bounded by prometheus_wait_s)."""
    return min(scrape.visibility_s(), monitoring.prometheus_wait_s)


def test_synthetic_traffic_is_visible_in_prometheus(
    prometheus, prometheus_scrape, prometheus_traffic, monitoring
):
    wait_for_increase(
        prometheus.api,
        prometheus_traffic.queries["requests"],
        prometheus_traffic.baselines["requests"],
        prometheus_traffic.count,
        _visible_within(prometheus_scrape, monitoring),
    )


def test_latency_histogram_is_in_prometheus(
    prometheus, prometheus_scrape, prometheus_traffic, monitoring
):
    wait_for_increase(
        prometheus.api,
        prometheus_traffic.queries["latency"],
        prometheus_traffic.baselines["latency"],
        prometheus_traffic.count,
        _visible_within(prometheus_scrape, monitoring),
    )
    buckets = prometheus_traffic.queries["buckets"]
    assert prometheus.api.value(buckets) > 0, (
        f"{prometheus.api.describe('/api/v1/query', {'query': buckets})}: no histogram buckets"
    )


# Last in the module: the checks above use the time a new Prometheus needs to settle.
def _settle(prometheus, scrape, rules, monitoring) -> list:
    """Rules evaluated late enough that an alert true since the first scrape would fire.

    Only for a Prometheus this run started (a long-running one has evaluated its rules for
    long already): a condition true from the first scrape is pending by the evaluation after
    it and firing one ``for`` later, so every rule must have been evaluated at or after
    first scrape + ``for`` + two evaluation intervals.
    """
    if not prometheus.started_here:
        return rules
    hold = max((float(rule.get("duration") or 0) for rule in rules), default=0.0)
    ready_at = scrape.first_seen + dt.timedelta(
        seconds=hold + SETTLE_EVALUATIONS * prometheus.interval_s
    )
    deadline = time.monotonic() + monitoring.prometheus_wait_s
    while time.monotonic() < deadline:
        evaluated = [parse_time(str(rule.get("lastEvaluation", ""))) for rule in rules]
        if all(moment and moment >= ready_at for moment in evaluated):
            return rules
        time.sleep(SETTLE_POLL_S)
        rules = prometheus.api.alerting_rules()
    raise PrometheusError(
        f"{prometheus.api.describe('/api/v1/rules', {'type': 'alert'})}: the alerting rules "
        f"were not evaluated past {ready_at.isoformat()} within "
        f"{monitoring.prometheus_wait_s:g} s (monitoring.prometheus_wait_s)",
        TIMEOUT,
    )


def test_no_critical_alert_is_firing(prometheus, prometheus_scrape, monitoring):
    rules_where = prometheus.api.describe("/api/v1/rules", {"type": "alert"})
    rules = prometheus.api.alerting_rules()
    if not rules:
        raise MetricsGap(
            f"{rules_where}: no data - no alerting rule is loaded, so no alert could fire; "
            "the absence of critical alerts means nothing"
        )
    _settle(prometheus, prometheus_scrape, rules, monitoring)
    severity, critical = monitoring.severity_label, monitoring.critical_severity
    firing = [
        alert
        for alert in prometheus.api.alerts()
        if alert.get("state") == "firing"
        and alert.get("labels", {}).get(severity) == critical
        and alert.get("labels", {}).get(monitoring.service_label) == prometheus.job
    ]
    assert not firing, (
        f"{prometheus.api.describe('/api/v1/alerts')}: critical alerts firing for "
        f"{monitoring.service_label}={prometheus.job!r}: "
        + "; ".join(
            f"{a['labels'].get('alertname')} since {a.get('activeAt')} "
            f"({a.get('annotations', {}).get('summary', '')})"
            for a in firing
        )
    )
