"""postdeploy.monitoring.prometheus (the API client's failures) and postdeploy.local.prometheus
(configuration, and a real local Prometheus that is started once for several processes and
never left running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from postdeploy.local.prometheus import (
    ALERT_ERROR_RATE,
    ALERT_INSTANCE_DOWN,
    ALERT_LATENCY,
    ScrapeSpec,
    alert_rules,
    prometheus_config,
    shared_local_prometheus,
)
from postdeploy.monitoring.prometheus import (
    MetricsGap,
    PrometheusAPI,
    PrometheusError,
    family_present,
    parse_duration,
    parse_exposition,
    parse_time,
    sample_sum,
    wait_for_increase,
    wait_for_scrape,
)

REPO = Path(__file__).resolve().parents[2]
#: Bound on waiting for a process to go away.
GONE_WITHIN_S = 10.0


def spec(**changes) -> ScrapeSpec:
    values = {
        "url": "https://127.0.0.1:1",
        "ca_file": "/nonexistent/ca.pem",
        "job": "la-test",
        "interval_s": 1.0,
        "error_ratio": 0.001,
        "latency_s": 2.0,
        "severity_label": "severity",
        "critical": "critical",
    }
    return ScrapeSpec(**{**values, **changes})


# -- configuration --------------------------------------------------------------------------


def test_the_rules_cover_instance_down_error_rate_and_latency():
    groups = alert_rules(spec())["groups"]
    rules = {rule["alert"]: rule for rule in groups[0]["rules"]}

    assert set(rules) == {ALERT_INSTANCE_DOWN, ALERT_ERROR_RATE, ALERT_LATENCY}
    assert rules[ALERT_INSTANCE_DOWN]["expr"] == 'up{job="la-test"} == 0'
    assert "> 0.001" in rules[ALERT_ERROR_RATE]["expr"]
    assert 'route!="/api/_test/error"' in rules[ALERT_ERROR_RATE]["expr"]
    assert rules[ALERT_LATENCY]["expr"].endswith("> 2.0")
    assert rules[ALERT_INSTANCE_DOWN]["labels"] == {"severity": "critical"}
    assert rules[ALERT_LATENCY]["labels"] == {"severity": "warning"}
    assert {rule["for"] for rule in rules.values()} == {"2000ms"}


def test_the_config_scrapes_https_trusting_the_ca(tmp_path):
    config = prometheus_config(spec(), tmp_path / "rules.yml")
    [job] = config["scrape_configs"]

    assert job["scheme"] == "https"
    assert job["tls_config"] == {"ca_file": "/nonexistent/ca.pem"}
    assert job["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
    assert config["rule_files"] == [str(tmp_path / "rules.yml")]
    assert prometheus_config(spec(without_rules=True), None)["rule_files"] == []


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0)]
)
def test_prometheus_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5", "1x", "s"])
def test_a_bad_duration_is_refused(text):
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        parse_duration(text)


def test_prometheus_times_keep_nanoseconds_and_the_zone():
    moment = parse_time("2026-11-26T04:42:37.414679256Z")

    assert moment is not None
    assert moment.microsecond == 414679
    assert moment.utcoffset().total_seconds() == 0
    assert parse_time("0001-01-01T00:00:00Z") is None


def test_exposition_helpers_read_counters_and_histograms():
    text = textwrap.dedent(
        """\
        # HELP la_http_requests_total HTTP requests
        # TYPE la_http_requests_total counter
        la_http_requests_total{route="/a",status="200"} 3
        la_http_requests_total{route="/a",status="500"} 1
        la_http_requests_total{route="/b",status="200"} 7
        """
    )
    families = parse_exposition(text, "test")

    assert family_present(families, "la_http_requests_total")
    assert not family_present(families, "la_app_info")
    assert sample_sum(families, "la_http_requests_total", route="/a") == 4
    assert sample_sum(families, "la_http_requests_total", route="/c") is None


def test_a_body_that_is_not_exposition_fails_with_its_source():
    with pytest.raises(AssertionError, match="GET /metrics is not valid Prometheus exposition"):
        parse_exposition("<html>not metrics</html>\n{", "GET /metrics")


# -- the API client's failures --------------------------------------------------------------


def test_an_unreachable_prometheus_fails_fast_naming_it_and_the_call():
    api = PrometheusAPI("http://127.0.0.1:9", timeout_s=2)
    started = time.monotonic()

    with pytest.raises(PrometheusError, match=r"Prometheus at http://127.0.0.1:9: GET /api/v1/"):
        api.targets()

    assert time.monotonic() - started < 2
    with pytest.raises(PrometheusError, match="Prometheus is unreachable"):
        api.value("up")


def test_a_query_error_names_the_query(api_server):
    server = api_server(
        lambda h: (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}, {})
    )
    api = PrometheusAPI(server.url, timeout_s=2)

    with pytest.raises(PrometheusError, match=r"query 'sum\(\('\) answered HTTP 400: parse error"):
        api.value("sum((")


def test_a_hanging_prometheus_times_out_within_the_bound(api_server):
    def slow(handler):
        time.sleep(1.5)
        return 200, {"status": "success", "data": {"resultType": "vector", "result": []}}, {}

    api = PrometheusAPI(api_server(slow).url, timeout_s=0.3)
    started = time.monotonic()

    with pytest.raises(PrometheusError, match=r"did not answer within 0.3 s"):
        api.query("up")
    assert time.monotonic() - started < 1.4


def test_an_empty_result_is_no_data_not_zero(api_server):
    server = api_server(
        lambda h: (200, {"status": "success", "data": {"resultType": "vector", "result": []}}, {})
    )
    api = PrometheusAPI(server.url, timeout_s=2)

    assert api.query("absent_metric") == []
    with pytest.raises(MetricsGap, match=r"'absent_metric'\) returned an empty result: no"):
        api.value("absent_metric")


def test_a_job_without_targets_is_no_data(api_server):
    body = {"status": "success", "data": {"activeTargets": [], "droppedTargets": []}}
    api = PrometheusAPI(api_server(lambda h: (200, body, {})).url, timeout_s=2)

    with pytest.raises(PrometheusError, match="no data - no active target in job 'la'"):
        wait_for_scrape(api, "la", timeout_s=0.3)


def test_the_bearer_token_is_sent_and_never_in_a_message(api_server):
    server = api_server(lambda h: (401, {"status": "error", "error": "unauthorized"}, {}))
    api = PrometheusAPI(server.url, timeout_s=2, token="prom-secret-token")

    with pytest.raises(PrometheusError) as failure:
        api.alerts()

    assert server.requests[0][1]["Authorization"] == "Bearer prom-secret-token"
    assert "prom-secret-token" not in str(failure.value)
    assert "HTTP 401" in str(failure.value)


# -- a real local Prometheus ---------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and ") Z " not in stat.read_text()


def prometheus_pids(folder: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(folder).encode() in cmdline and alive(int(proc.name)):
                pids.append(int(proc.name))
    return pids


def wait_gone(folder: Path) -> list[int]:
    deadline = time.monotonic() + GONE_WITHIN_S
    while time.monotonic() < deadline and prometheus_pids(folder):
        time.sleep(0.1)
    return prometheus_pids(folder)


def test_a_real_prometheus_loads_the_rules_and_answers_queries(tmp_path):
    folder = tmp_path / "prom"
    with shared_local_prometheus(folder, spec()) as url:
        api = PrometheusAPI(url, timeout_s=5)
        assert api.ready()
        assert {r["name"] for r in api.alerting_rules()} == {
            ALERT_INSTANCE_DOWN,
            ALERT_ERROR_RATE,
            ALERT_LATENCY,
        }
        assert api.value("vector(3)") == 3
        with pytest.raises(MetricsGap, match="returned an empty result"):
            api.value('la_http_requests_total{job="la-test"}')
        with pytest.raises(MetricsGap, match=r"stayed at 1 for 0.5 s"):
            wait_for_increase(api, "vector(1)", baseline=1, increase=1, timeout_s=0.5)
        assert prometheus_pids(folder)
        api.close()

    assert wait_gone(folder) == []
    assert not folder.exists()


def test_alert_rules_missing_starts_it_without_rules(tmp_path):
    with shared_local_prometheus(tmp_path / "prom", spec(without_rules=True)) as url:
        assert PrometheusAPI(url, timeout_s=5).alerting_rules() == []


USER = """
import sys, time
from pathlib import Path
from postdeploy.local.prometheus import ScrapeSpec, shared_local_prometheus
spec = ScrapeSpec(url="https://127.0.0.1:1", ca_file="/nonexistent", job="j", interval_s=1.0,
                  error_ratio=0.001, latency_s=2.0, severity_label="severity", critical="critical")
with shared_local_prometheus(Path(sys.argv[1]), spec) as url:
    print(url, flush=True)
    sys.stdin.readline()
"""


def user(folder: Path) -> tuple[subprocess.Popen[str], str]:
    """A process using the shared Prometheus until a line arrives on its stdin."""
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(folder)], cwd=REPO, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_several_processes_share_one_prometheus_and_the_last_stops_it(tmp_path):
    folder = tmp_path / "prom"
    first, first_url = user(folder)
    second, second_url = user(folder)
    try:
        assert first_url == second_url
        [instance] = [json.loads((folder / "instance.json").read_text())]
        first.communicate("done\n", timeout=30)
        assert alive(instance["supervisor"])
        assert PrometheusAPI(second_url, timeout_s=5).ready()
        second.communicate("done\n", timeout=30)
        assert wait_gone(folder) == []
        assert not folder.exists()
    finally:
        for process in (first, second):
            process.kill()


def test_a_killed_run_never_leaves_prometheus_running(tmp_path):
    folder = tmp_path / "prom"
    process, url = user(folder)
    assert PrometheusAPI(url, timeout_s=5).ready()

    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    assert wait_gone(folder) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/-/ready", timeout=1)
