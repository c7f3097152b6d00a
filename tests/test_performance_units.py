"""Unit tests of the performance engine: load settings and stats, SLO sampling, web-vitals
maths, browser choice and trace redaction. The real runs are in test_performance_local.py."""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from postdeploy import browser
from postdeploy.config import load_targets
from postdeploy.contract import PATHS
from postdeploy.performance import load
from postdeploy.performance import response_times as slo
from postdeploy.performance import web_vitals as vitals
from postdeploy.redact import REDACTED

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def local_target():
    return load_targets(REPO / "targets.toml", environ={}).targets["local"]


# -- load: profiles, options, bounds --------------------------------------------------------


def test_every_profile_fits_the_default_bounds_and_is_named_by_its_shape():
    plans = load.plans()
    assert list(plans.PLANS) == [
        "quick",
        "smoke",
        "capacity",
        "baseline",
        "stress",
        "spike",
        "soak",
    ]
    smoke = plans.PLANS["smoke"]
    # the operations plan: 1000 requests at 10 concurrent on /, 500 at 5 on /api/health
    assert [(q.path, q.requests, q.users) for q in smoke.quotas] == [
        ("/", 1000, 10),
        ("/api/health", 500, 5),
    ]
    assert smoke.planned_requests == 1500
    for plan in plans.PLANS.values():
        settings = load.LoadSettings(host="https://example.com", profile=plan.name)
        settings.check_bounds()  # the defaults admit every profile
        stages = [stage.until_s for stage in plan.stages]
        assert stages == sorted(stages), plan.name


def test_the_locustfile_requests_the_paths_of_the_contract():
    """load/ runs without postdeploy installed (remote workers), so it names the paths itself;
    they must stay the contract's."""
    tree = ast.parse((REPO / "load" / "locustfile.py").read_text())
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id.startswith(("API_", "PAGE_"))
        and isinstance(node.value, ast.Constant)
    }
    assert constants == {
        "API_REGISTER": PATHS.register,
        "API_LOGIN": PATHS.login,
        "API_CONTENT": PATHS.content,
        "API_SESSION": PATHS.session,
        "API_PROGRESS": PATHS.progress,
        "API_PROFILE": PATHS.profile,
        "API_ACCOUNT": PATHS.account,
        "PAGE_DASHBOARD": PATHS.page_dashboard,
    }
    quota_paths = {q.path for plan in load.plans().PLANS.values() for q in plan.quotas}
    assert quota_paths == {PATHS.page_home, PATHS.health}


def test_an_unknown_load_profile_is_a_usage_error(pytester):
    result = pytester.runpytest_inprocess("--load-profile", "hammer")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown load profile 'hammer'; valid profiles: quick, smoke*"])


SHAPE_PROBE = """
import json, sys, types
sys.path.insert(0, sys.argv[1])
import profiles

class Entry:
    num_requests = 0

class Stats:
    def get(self, path, method):
        return Entry()

def user(name):
    return type(name, (), {})

runner = types.SimpleNamespace(
    user_classes=[user("LandingVisitor"), user("HealthProbe"), user("Learner")], stats=Stats()
)
ticks = {}
for name, shape_class in profiles.SHAPES.items():
    shape = shape_class()
    shape.runner = runner
    ticks[name] = {}
    for second in (0, 30, 65, 95, 125, 175, 235, 250, 1799, 1801):
        shape.get_run_time = lambda second=second: second
        tick = shape.tick()
        ticks[name][second] = None if tick is None else [
            tick[0], tick[1], sorted(c.__name__ for c in tick[2])
        ]
print(json.dumps(ticks))
"""


def test_each_shape_follows_its_plan_and_stops_at_its_limit():
    """The LoadTestShape classes, ticked at chosen run times in a process of their own."""
    env = {"PATH": "/usr/bin:/bin", "PD_LOAD_MAX_USERS": "80"}
    done = subprocess.run(
        [sys.executable, "-c", SHAPE_PROBE, str(REPO / "load")],
        capture_output=True, text=True, timeout=60, check=True, env=env,
    )  # fmt: skip
    ticks = json.loads(done.stdout)
    learner = ["Learner"]
    # quota profiles: every class at once; never done here (no request made), so they run
    # until their time limit
    assert ticks["smoke"]["0"] == [17, 17.0, ["HealthProbe", "LandingVisitor", "Learner"]]
    assert ticks["smoke"]["235"] is not None
    assert ticks["smoke"]["1801"] is None
    assert ticks["capacity"]["0"][0] == 10
    assert ticks["capacity"]["30"] is None
    # staged profiles
    assert ticks["baseline"]["0"] == [20, 2.0, learner]
    assert ticks["baseline"]["175"] == [20, 2.0, learner]
    assert ticks["baseline"]["235"] is None
    assert [ticks["stress"][t][0] for t in ("0", "65", "125", "175")] == [25, 50, 75, 75]
    assert ticks["stress"]["235"] == [80, 5.0, learner]  # 100 wanted, capped at the bound
    assert ticks["stress"]["250"] is None
    assert [ticks["spike"][t][0] for t in ("30", "65", "95", "125")] == [10, 80, 10, 10]  # capped
    assert ticks["soak"]["1799"] == [30, 3.0, learner]
    assert ticks["soak"]["1801"] is None


def test_load_profile_option_names_the_valid_profiles():
    assert load.load_profile_option("stress") == "stress"
    with pytest.raises(argparse.ArgumentTypeError, match="valid profiles: quick, smoke"):
        load.load_profile_option("hammer")


@pytest.mark.parametrize("value", ["-1", "two", "999"])
def test_load_workers_option_refuses_bad_counts(value):
    with pytest.raises(argparse.ArgumentTypeError):
        load.load_workers_option(value)


def test_a_profile_over_the_targets_bounds_is_refused_before_anything_starts(local_target):
    settings = load.LoadSettings.from_target(local_target, "r1", profile="stress")
    bounded = load.LoadSettings(**{**settings.__dict__, "max_users": 10})
    with pytest.raises(load.LoadError, match=r"needs 100 users but \[targets.local.load\]"):
        bounded.check_bounds()
    short = load.LoadSettings(**{**settings.__dict__, "max_duration_s": 60.0})
    with pytest.raises(load.LoadError, match=r"runs 240 s but .* max_duration_s = 60"):
        short.check_bounds()
    with pytest.raises(load.LoadError, match="more workers than profile quick has users"):
        load.LoadSettings(host="https://x", profile="quick", workers=20).check_bounds()


def test_settings_come_from_the_target_and_the_options(local_target):
    settings = load.LoadSettings.from_target(local_target, "r1")
    assert (settings.profile, settings.workers) == ("quick", 0)  # targets.toml: local = quick
    assert settings.error_rate == 0.001
    assert settings.p95_ms == 2000
    chosen = load.LoadSettings.from_target(local_target, "r1", profile="smoke", workers=3)
    assert (chosen.profile, chosen.workers) == ("smoke", 3)


def test_distributed_mode_is_one_master_and_n_workers_on_loopback(tmp_path):
    settings = load.LoadSettings(host="https://example.com", profile="smoke", workers=2)
    master, *workers = load.commands(settings, tmp_path, 5599)
    assert master[1:3] == ["-m", "locust"]
    assert "--master" in master
    assert "--headless" in master
    assert master[master.index("--expect-workers") + 1] == "2"
    assert master[master.index("--master-bind-host") + 1] == "127.0.0.1"
    assert len(workers) == 2
    for worker in workers:
        assert "--worker" in worker
        assert "--headless" not in worker
        assert worker[worker.index("--master-port") + 1] == "5599"
    single = load.commands(load.LoadSettings(host="https://x", profile="quick"), tmp_path, 0)
    assert len(single) == 1
    assert "--master" not in single[0]


def test_the_locustfile_gets_its_bounds_and_thresholds_from_the_environment(tmp_path):
    settings = load.LoadSettings(
        host="https://x", profile="smoke", max_users=40, ca_file="/ca.pem", error_rate=0.01
    )
    env = load.environment(settings, tmp_path)
    assert env["PD_LOAD_PROFILE"] == "smoke"
    assert env["PD_LOAD_MAX_USERS"] == "40"
    assert env["PD_LOAD_CA_FILE"] == "/ca.pem"
    assert env["PD_LOAD_ERROR_RATE"] == "0.01"
    assert float(env["PD_LOAD_MAX_DURATION_S"]) == 300  # the smoke profile's own limit


def test_importing_the_harness_never_imports_locust_or_gevent():
    code = (
        "import sys, postdeploy.plugin, postdeploy.performance.load, postdeploy.browser, "
        "postdeploy.performance.web_vitals;"
        "print(sorted(m for m in ('gevent', 'locust') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


# -- load: stats and verdict ----------------------------------------------------------------


def _entry(name, requests, failures, histogram, method="GET"):
    return {
        "name": name,
        "method": method,
        "num_requests": requests,
        "num_none_requests": 0,
        "num_failures": failures,
        "total_response_time": sum(int(k) * v for k, v in histogram.items()),
        "max_response_time": max(int(k) for k in histogram),
        "min_response_time": min(int(k) for k in histogram),
        "response_times": {str(k): v for k, v in histogram.items()},
        "start_time": 100.0,
        "last_request_timestamp": 104.5,
    }


def _result(tmp_path, entries, **changes):
    stats = tmp_path / "locust.json"
    stats.write_text(json.dumps(entries))
    endpoints, total, span = load.parse_stats(stats)
    settings = load.LoadSettings(host="https://x", profile="quick")
    fields = {"exit_code": 0, "worker_exit_codes": [], "timed_out": False, "wall_s": 6.0}
    fields.update(changes)
    return load.LoadResult(
        settings, tmp_path, endpoints=endpoints, total=total, span_s=span, **fields
    )


def test_percentiles_follow_locusts_histogram_method():
    histogram = {10: 90, 20: 6, 3000: 4}
    assert load.percentile(histogram, 100, 0.50) == 10
    assert load.percentile(histogram, 100, 0.95) == 20
    assert load.percentile(histogram, 100, 0.99) == 3000


def test_a_healthy_run_has_no_violations(tmp_path):
    result = _result(tmp_path, [_entry("/", 1000, 0, {40: 900, 80: 100})])
    assert result.violations() == []
    assert result.total.requests == 1000
    assert result.span_s == pytest.approx(4.5)
    assert "Aggregated" in result.table()


def test_errors_and_a_slow_endpoint_are_named_with_their_figures(tmp_path):
    result = _result(
        tmp_path,
        [
            _entry("/", 960, 40, {40: 960}),
            _entry("/api/learning/content", 40, 0, {2500: 40}),
        ],
    )
    problems = result.violations()
    assert any("error rate 4.00% (40 of 1000 requests failed)" in p for p in problems)
    assert any("GET /api/learning/content p95 2500 ms" in p for p in problems)


def test_an_aborted_or_stopped_run_says_so(tmp_path):
    result = _result(tmp_path, [_entry("/", 60, 30, {5: 60})], timed_out=True)
    result.summary = {"aborted": True, "abort_reason": "error rate 50.0% after 60 requests"}
    problems = " ".join(result.violations())
    assert "aborted: error rate 50.0%" in problems
    assert "did not finish within" in problems


def test_no_stats_is_a_harness_error_with_the_log(tmp_path):
    (tmp_path / "master.log").write_text("Traceback ...\nImportError: no module named plans\n")
    result = load.LoadResult(
        load.LoadSettings(host="https://x", profile="quick"), tmp_path, 2, [], False, 1.0
    )
    with pytest.raises(load.LoadError, match=r"(?s)wrote no stats.*no module named plans"):
        load._read_outputs(result)


# -- response-time SLO ----------------------------------------------------------------------


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 21)]
    assert slo.nearest_rank(values, 0.50) == 10
    assert slo.nearest_rank(values, 0.95) == 19
    assert slo.nearest_rank(values, 0.99) == 20
    assert slo.allowed_over(20) == 1


def _responses(statuses, delay=None):
    answers = iter(statuses)

    def send():
        if delay:
            delay()
        return httpx.Response(next(answers), request=httpx.Request("GET", "https://x/"))

    return send


def test_sampling_stops_once_the_p95_cannot_be_within_the_limit(monkeypatch):
    clock = iter([0.0, 3.0] * 40)  # every timed request "takes" 3 s
    monkeypatch.setattr(slo.time, "perf_counter", lambda: next(clock))
    samples = slo.sample("GET /slow", _responses([200] * 40), 200, 20, 2, limit_ms=2000)
    assert len(samples.times_ms) == 2  # 2 over the limit: the p95 of 20 can no longer be within
    assert samples.stopped_early
    assert not samples.within()
    assert "stopped early" in samples.figures()


def test_a_wrong_status_while_sampling_fails_with_the_endpoint():
    with pytest.raises(AssertionError, match="GET /x: expected HTTP 200 while timing it, got 500"):
        slo.sample("GET /x", _responses([200, 500]), 200, 5, 1, limit_ms=2000)


def test_endpoints_are_sampled_at_most_in_flight_at_once_each_with_its_own_outcome():
    """Several endpoints at a time, never more than ``in_flight``; one endpoint's failure is
    returned for that endpoint only. Each sampler waits for two others (a barrier of 3): the 6
    endpoints go in two waves of 3, and a fourth at once would show in the peak."""
    lock, running, peak = threading.Lock(), [0], [0]
    waves = threading.Barrier(3, timeout=10)

    def sampler(name: str, status: int):
        def run():
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            waves.wait()
            with lock:
                running[0] -= 1
            return slo.sample(f"GET /{name}", _responses([200, status]), 200, 1, 1, 2000)

        return run

    samplers = {f"e{n}": sampler(f"e{n}", 200) for n in range(5)}
    samplers["broken"] = sampler("broken", 500)
    results = slo.sample_each(samplers, in_flight=3)
    assert peak[0] == 3
    assert list(results) == [*(f"e{n}" for n in range(5)), "broken"]
    assert all(isinstance(results[f"e{n}"], slo.Samples) for n in range(5))
    assert isinstance(results["broken"], AssertionError)
    assert "GET /broken: expected HTTP 200 while timing it, got 500" in str(results["broken"])
    with pytest.raises(ValueError, match="in_flight must be at least 1"):
        slo.sample_each(samplers, in_flight=0)


# -- web vitals maths -----------------------------------------------------------------------


def test_cls_is_the_worst_session_window_without_recent_input():
    shifts = [
        {"time": 100, "value": 0.05, "hadRecentInput": False},
        {"time": 600, "value": 0.04, "hadRecentInput": False},  # same window: 0.09
        {"time": 3000, "value": 0.2, "hadRecentInput": True},  # after input: ignored
        {"time": 5000, "value": 0.06, "hadRecentInput": False},  # a new window
    ]
    assert vitals.cumulative_layout_shift(shifts) == pytest.approx(0.09)
    assert vitals.cumulative_layout_shift([]) == 0.0


def test_inp_is_the_longest_interaction_else_the_first_input():
    events = [
        {"name": "pointerdown", "duration": 24, "interactionId": 7},
        {"name": "click", "duration": 408, "interactionId": 7},
        {"name": "mousemove", "duration": 900, "interactionId": 0},  # not an interaction
    ]
    assert vitals.interaction_to_next_paint(events, []) == 408
    assert vitals.interaction_to_next_paint([], [{"duration": 8}]) == 8
    assert vitals.interaction_to_next_paint([], []) is None


def test_the_median_of_runs_is_judged_against_each_threshold():
    runs = [
        vitals.Vitals(lcp_ms=900, cls=0.0, inp_ms=8, fcp_ms=500, ttfb_ms=40),
        vitals.Vitals(lcp_ms=3400, cls=0.13, inp_ms=16, fcp_ms=600, ttfb_ms=60),
        vitals.Vitals(lcp_ms=3300, cls=0.13, inp_ms=None, fcp_ms=550, ttfb_ms=50),
    ]
    medians = vitals.median(runs)
    assert medians["lcp_ms"] == 3300
    assert medians["inp_ms"] is None  # one load could not measure it
    limits = {"lcp_ms": 2500, "cls": 0.1, "inp_ms": 200, "fcp_ms": 1800, "ttfb_ms": 800}
    problems = vitals.judge(medians, limits)
    assert problems == [
        "LCP 3300 ms is over 2500 ms",
        "CLS 0.130 is over 0.100",
        "INP could not be measured",
    ]
    assert "median" in vitals.table("landing", runs, medians)


# -- browser choice and trace redaction -----------------------------------------------------


def _fake_browser(path):
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_with_no_browser_the_message_says_how_to_install_one(monkeypatch, tmp_path):
    monkeypatch.setenv(browser.CHROMIUM_ENV, str(tmp_path / "no-chromium"))
    driver = SimpleNamespace(chromium=SimpleNamespace(executable_path=str(tmp_path / "none")))
    with pytest.raises(browser.BrowserUnavailable) as caught:
        browser.choose_browser(driver)
    message = str(caught.value)
    assert "python -m playwright install chromium" in message
    assert "apt-get install chromium" in message


def test_the_system_chromium_is_used_when_playwright_has_none(monkeypatch, tmp_path):
    fake = _fake_browser(tmp_path / "chromium")
    monkeypatch.setenv(browser.CHROMIUM_ENV, fake)
    driver = SimpleNamespace(chromium=SimpleNamespace(executable_path=str(tmp_path / "none")))
    assert browser.choose_browser(driver) == browser.BrowserChoice(fake, "system")


def test_the_headless_shell_comes_before_the_full_chromium(monkeypatch, tmp_path):
    shell, full = tmp_path / "chromium-headless-shell", tmp_path / "chromium"
    monkeypatch.delenv(browser.CHROMIUM_ENV, raising=False)
    monkeypatch.setattr(browser, "SYSTEM_CHROMIUMS", (str(shell), str(full)))
    driver = SimpleNamespace(chromium=SimpleNamespace(executable_path=str(tmp_path / "none")))
    _fake_browser(full)
    assert browser.choose_browser(driver) == browser.BrowserChoice(str(full), "system")
    _fake_browser(shell)
    assert browser.choose_browser(driver) == browser.BrowserChoice(str(shell), "system")


def test_with_no_system_chromium_the_message_names_both(monkeypatch, tmp_path):
    shell, full = tmp_path / "chromium-headless-shell", tmp_path / "chromium"
    monkeypatch.delenv(browser.CHROMIUM_ENV, raising=False)
    monkeypatch.setattr(browser, "SYSTEM_CHROMIUMS", (str(shell), str(full)))
    driver = SimpleNamespace(chromium=SimpleNamespace(executable_path=str(tmp_path / "none")))
    with pytest.raises(browser.BrowserUnavailable) as caught:
        browser.choose_browser(driver)
    message = str(caught.value)
    assert f"{shell} or {full}" in message
    assert "apt-get install chromium-headless-shell" in message


def test_the_driver_keeps_node_compiled_code_in_the_users_cache_while_it_starts(
    monkeypatch, tmp_path
):
    monkeypatch.delenv(browser.NODE_COMPILE_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with browser._node_compile_cache():
        assert os.environ[browser.NODE_COMPILE_CACHE_ENV] == str(
            tmp_path / "postdeploy" / "node-compile-cache"
        )
    assert browser.NODE_COMPILE_CACHE_ENV not in os.environ  # other processes never see it
    monkeypatch.setenv(browser.NODE_COMPILE_CACHE_ENV, "/somewhere/else")
    with browser._node_compile_cache():
        assert os.environ[browser.NODE_COMPILE_CACHE_ENV] == "/somewhere/else"
    assert os.environ[browser.NODE_COMPILE_CACHE_ENV] == "/somewhere/else"


def test_launch_flags_keep_chromium_off_the_network():
    for flag in ("--no-sandbox", "--disable-background-networking", "--disable-quic"):
        assert flag in browser.LAUNCH_ARGS


def test_a_trace_loses_passwords_tokens_and_secret_headers(tmp_path):
    trace = tmp_path / "trace.zip"
    network = {
        "type": "resource-snapshot",
        "request": {"headers": [{"name": "Cookie", "value": "la_session=abc.def.ghi"}]},
        "response": {"headers": [{"name": "Content-Type", "value": "application/json"}]},
    }
    action = {"type": "before", "method": "fill", "params": {"value": "hunter2-secret-pw"}}
    with zipfile.ZipFile(trace, "w") as out:
        out.writestr("trace.network", json.dumps(network) + "\n")
        out.writestr("trace.trace", json.dumps(action) + "\n")
        out.writestr("resources/abc", '{"access_token": "eyJhbGciOi.eyJzdWIiOi.c2ln"}')
        out.writestr("resources/img.png", b"\x89PNG\xff\xfe")
    browser.redact_trace(trace, ["hunter2-secret-pw"])
    with zipfile.ZipFile(trace) as redacted:
        text = "".join(redacted.read(n).decode("utf-8", "replace") for n in redacted.namelist())
        assert redacted.read("resources/img.png") == b"\x89PNG\xff\xfe"
    assert "hunter2-secret-pw" not in text
    assert "abc.def.ghi" not in text
    assert "eyJhbGciOi" not in text
    assert REDACTED in text
    assert "application/json" in text  # harmless headers stay
