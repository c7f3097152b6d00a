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

#: After the other checks of their kind, those that run alone included: a harness-started
#: Prometheus holds its first scrape back about 5 s after it starts (postdeploy/early.py), and
#: they run meanwhile. Its scrapes are all it sends the target, so it may go on while the
#: checks that run alone measure.
pytestmark = pytest.mark.last

#: Rule evaluations to wait past an alert's `for` before trusting a harness-started server.
SETTLE_EVALUATIONS = 2
SETTLE_POLL_S = 0.25
RUNTIME_INFO = "/api/v1/status/runtimeinfo"


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
    hold = max((float(rule.get("duration") or 0) for rule in rules), default=0.0)
    settle = dt.timedelta(seconds=hold + SETTLE_EVALUATIONS * prometheus.interval_s)
    if prometheus.started_here:
        ready_at = scrape.first_seen + settle
    else:
        # A Prometheus run by the platform may have started just now, with the deployment
        # this run made: it settles from its own start (a long-running one is long settled).
        started = parse_time(str(prometheus.api.get(RUNTIME_INFO).get("startTime", "")))
        if started is None:
            return rules
        ready_at = started + settle + dt.timedelta(seconds=prometheus.interval_s)
        if ready_at <= dt.datetime.now(dt.UTC):
            return rules
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

    def ours(labels: dict) -> bool:
        return (
            labels.get(severity) == critical
            and labels.get(monitoring.service_label) == prometheus.job
        )

    # A pending critical alert counts too: its condition is true now, it only has not held
    # for its `for` yet - right after a deploy to a long-running Prometheus, that is the
    # difference between a check that sees a new outage and one that waits it out.
    firing = [
        f"{a['labels'].get('alertname')} {a.get('state')} since {a.get('activeAt')} "
        f"({a.get('annotations', {}).get('summary', '')})"
        for a in prometheus.api.alerts()
        if a.get("state") in ("firing", "pending") and ours(a.get("labels", {}))
    ]
    where = prometheus.api.describe("/api/v1/alerts")
    if monitoring.alertmanager_url:
        # What the people on call see: the Alertmanager the alerts are routed to.
        firing += _alertmanager_alerts(prometheus, monitoring, ours)
        where += f" and Alertmanager at {monitoring.alertmanager_url}"
    assert not firing, (
        f"{where}: critical alerts firing (or pending) for "
        f"{monitoring.service_label}={prometheus.job!r}: " + "; ".join(dict.fromkeys(firing))
    )


def _alertmanager_alerts(prometheus, monitoring, ours) -> list[str]:
    """Active critical alerts in the Alertmanager; a failure if Prometheus sends to none."""
    from postdeploy.monitoring.alertmanager import AlertmanagerAPI

    senders = prometheus.api.get("/api/v1/alertmanagers").get("activeAlertmanagers") or []
    assert senders, (
        f"{prometheus.api.describe('/api/v1/alertmanagers')}: Prometheus sends its alerts to no "
        f"Alertmanager, so {monitoring.alertmanager_url} can never show one; the absence of "
        "critical alerts there means nothing (check Prometheus's alerting configuration)"
    )
    alertmanager = AlertmanagerAPI(monitoring.alertmanager_url, monitoring.query_timeout_s)
    try:
        alertmanager.status()
        return [
            f"{a['labels'].get('alertname')} since {a.get('startsAt')} "
            f"({a.get('annotations', {}).get('summary', '')}, in Alertmanager)"
            for a in alertmanager.active_alerts()
            if ours(a.get("labels", {}))
        ]
    finally:
        alertmanager.close()
