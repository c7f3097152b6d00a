"""The monitoring suite against the real reference app on a private local platform: green when
healthy (under xdist, with one Prometheus), each monitoring fault caught by its check, bad
monitoring settings failing clearly, and nothing left running."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from postdeploy.local import sentry_standin
from postdeploy.local.prometheus import run_folder
from postdeploy.sysutil import free_port

MONITORING = "suites/monitoring"
METRICS = "suites/monitoring/test_metrics.py"
PROMETHEUS = "suites/monitoring/test_prometheus.py"
ERRORS = "suites/monitoring/test_error_tracking.py"
LOGS = "suites/monitoring/test_logs.py"
HEALTH = "suites/monitoring/test_health.py"
DATABASE = "suites/functional/test_database.py"
#: Short bounds where a check must run out of time (the defaults are for real platforms).
SHORT_WAITS = {
    "POSTDEPLOY_LOCAL_MONITORING_SENTRY_WAIT_S": "3",
    "POSTDEPLOY_LOCAL_MONITORING_LOG_WAIT_S": "2",
}

SCRAPED = "test_prometheus_scrapes_the_target"
RULES = "test_required_alert_rules_are_loaded"
NO_CRITICAL = "test_no_critical_alert_is_firing"
VISIBLE = "test_synthetic_traffic_is_visible_in_prometheus"
LATENCY_PROM = "test_latency_histogram_is_in_prometheus"
EXPOSITION = "test_metrics_endpoint_serves_prometheus_exposition"
FAMILIES = "test_required_metric_families_are_present"
COUNTERS = "test_request_counters_increase_after_synthetic_requests"
LATENCY = "test_latency_histogram_records_the_synthetic_requests"
RELEASE = "test_metrics_name_the_serving_release"
SENTRY = "test_an_error_on_the_deployment_reaches_error_tracking"
LOGGED = "test_a_request_appears_in_the_collected_logs"
HEALTHY = "test_health_endpoint_reports_healthy"

#: fault -> (suites to run, checks that must fail, checks that must still pass)
FAULTS: dict[str, tuple[tuple[str, ...], set[str], set[str]]] = {
    "metrics_missing": (
        (METRICS, PROMETHEUS, HEALTH),
        {EXPOSITION, FAMILIES, COUNTERS, LATENCY, SCRAPED, NO_CRITICAL},
        {RULES, HEALTHY},
    ),
    "metrics_frozen": (
        (METRICS, PROMETHEUS),
        {COUNTERS, LATENCY, VISIBLE, LATENCY_PROM},
        {EXPOSITION, FAMILIES, SCRAPED, RULES, NO_CRITICAL},
    ),
    "alert_rules_missing": ((PROMETHEUS,), {RULES, NO_CRITICAL}, {SCRAPED, VISIBLE}),
    "error_tracking_off": ((ERRORS, LOGS), {SENTRY}, {LOGGED}),
    "logs_dropped": ((ERRORS, LOGS), {LOGGED}, {SENTRY}),
    "wrong_version": ((METRICS,), {RELEASE}, {FAMILIES, COUNTERS}),
    "health_lies": (
        (DATABASE, HEALTH),
        {"test_a_write_is_read_back_from_the_database"},
        {HEALTHY, "test_every_dependency_check_is_healthy"},
    ),
}

#: fault -> {check: words its failure message must hold}: each check failed for the defect
METRICS_404 = "expected HTTP 200 from GET /metrics, got 404"
DEFECT_WORDS: dict[str, dict[str, str]] = {
    "metrics_missing": {
        EXPOSITION: METRICS_404, FAMILIES: METRICS_404, COUNTERS: METRICS_404,
        LATENCY: METRICS_404, SCRAPED: "server returned HTTP status 404",
        NO_CRITICAL: "LearningAssistantInstanceDown",
    },
    "metrics_frozen": {
        COUNTERS: "no la_http_requests_total sample", LATENCY: "no latency histogram",
        VISIBLE: "the value stayed at", LATENCY_PROM: "the value stayed at",
    },
    "alert_rules_missing": {
        RULES: "required alerting rules not loaded", NO_CRITICAL: "no alerting rule is loaded",
    },
    "error_tracking_off": {SENTRY: "no event tagged"},
    "logs_dropped": {LOGGED: "the request's log line was not collected"},
    "wrong_version": {RELEASE: "does not name release '1.1.0'"},
    "health_lies": {"test_a_write_is_read_back_from_the_database": "got 500"},
}  # fmt: skip


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


class DataDirs(threading.Thread):
    """Watches a run's Prometheus folder and remembers every TSDB dir (one per start)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.seen: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.seen |= {p.name for p in self.folder.glob("data-*")}
            except OSError:
                continue


def test_a_healthy_release_passes_the_monitoring_suite_under_xdist(local_env):
    local_env.platform.deploy("1.0.0")
    run_id = f"montest{int(time.time())}"
    folder = run_folder(run_id, "local")
    watcher = DataDirs(folder)
    watcher.start()
    try:
        run = local_env.run("-n", "2", "--run-id", run_id, suites=(MONITORING,))
    finally:
        watcher.done.set()
        watcher.join()

    assert run.returncode == 0, run.output[-3000:]
    assert run.target()["gate"] == "passed"
    assert not run.failed()
    assert not run.broken(), run.target()["failures"]
    assert {SCRAPED, RULES, NO_CRITICAL, VISIBLE, SENTRY, LOGGED, COUNTERS} <= run.passed()
    assert len(watcher.seen) == 1, f"Prometheus started {len(watcher.seen)} times"
    assert not folder.exists()
    assert processes_mentioning(str(folder)) == []


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_monitoring_fault_is_caught_by_its_check(local_env, monkeypatch, fault):
    suites, must_fail, must_pass = FAULTS[fault]
    for name, value in SHORT_WAITS.items():
        monkeypatch.setenv(name, value)
    local_env.platform.deploy("1.1.0", [fault])

    run = local_env.run("--expect-version", "1.1.0", suites=suites)

    assert set(DEFECT_WORDS[fault]) == must_fail
    run.assert_caught(DEFECT_WORDS[fault])
    assert must_pass <= run.passed(), (
        f"collateral: {must_pass - run.passed()}\n{run.output[-2000:]}"
    )


def test_unreachable_prometheus_and_a_wrong_sentry_token_are_broken_not_failed(
    local_env, monkeypatch
):
    closed = free_port()
    wrong_token = "not-the-standin-token-5f3a"
    monkeypatch.setenv("POSTDEPLOY_LOCAL_MONITORING_PROMETHEUS_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("SENTRY_STANDIN_TOKEN", wrong_token)
    local_env.platform.deploy("1.0.0")

    run = local_env.run(suites=(PROMETHEUS, ERRORS))

    assert run.returncode == 1
    assert {SCRAPED, RULES, NO_CRITICAL, VISIBLE, LATENCY_PROM, SENTRY} <= run.broken()
    assert not run.failed()
    # a monitoring outage is the harness's side: the scrape check gates, but only inconclusively
    assert run.target()["gate"] == "inconclusive"
    assert f"Prometheus at http://127.0.0.1:{closed}: GET /api/v1/targets" in run.output
    assert "Prometheus is unreachable" in run.output
    assert "refused the token from $SENTRY_STANDIN_TOKEN (HTTP 401" in run.output
    assert wrong_token not in run.output
    assert wrong_token not in json.dumps(run.verdict)


def test_the_sentry_stand_in_lives_and_dies_with_the_deployment(local_env):
    platform = local_env.platform
    platform.deploy("1.0.0")
    standin = sentry_standin.running(platform.state_dir)
    assert standin is not None
    platform.deploy("1.0.1")
    assert sentry_standin.running(platform.state_dir) == standin  # one stand-in across releases

    platform.stop()

    assert sentry_standin.running(platform.state_dir) is None
    assert processes_mentioning(f"--state-dir {platform.state_dir}".split()[-1]) == []
