"""The performance suite and the browser journeys against the real reference app: green when
healthy, each fault caught by its check, Locust distributed mode, the abort rule, bounds,
clean-up of synthetic users, and a clear failure when no browser is installed.

Fault runs select only the checks that matter (bounded: a few seconds of load at most)."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from postdeploy.performance import load
from tests.conftest import junit_cases

PERFORMANCE = "suites/performance"
JOURNEYS = "suites/journeys"
RESPONSE_TIMES = f"{PERFORMANCE}/test_response_times.py"
LOAD = f"{PERFORMANCE}/test_load.py"
VITALS = f"{PERFORMANCE}/test_web_vitals.py"
STATIC = f"{PERFORMANCE}/test_static_assets.py"

SLO = "test_response_time_p95_is_within_the_slo"
LOAD_CHECK = "test_under_load_the_error_rate_and_p95_stay_within_thresholds[local]"
VITALS_CHECK = "test_core_web_vitals_are_green"
COMPRESSION = "test_text_assets_are_sent_compressed[local]"
CACHING = "test_static_files_are_cacheable_and_revalidate[local]"
BUDGET = "test_each_key_page_stays_within_its_size_budget[local]"
REGISTRATION = "test_a_visitor_registers_and_lands_on_the_dashboard[local]"
LOGIN_LOGOUT = "test_a_user_logs_in_and_logs_out[local]"
LESSON = "test_a_completed_lesson_shows_on_the_dashboard[local]"
WHOLE_JOURNEY = "test_a_new_learner_completes_the_whole_journey[local]"


def cases(local_env) -> dict[str, str]:
    """Outcome of every test case (with its parameters) of the last run."""
    return junit_cases(local_env.reports_root / f"run-{local_env.runs}" / "junit.xml")


def message(local_env, name: str) -> str:
    """The failure message of one test case of the last run."""
    junit = local_env.reports_root / f"run-{local_env.runs}" / "junit.xml"
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.get("name") == name:
            return " ".join(f"{c.get('message', '')} {c.text or ''}" for c in case)
    raise KeyError(name)


def load_summary(local_env, profile: str = "quick") -> dict:
    path = local_env.reports_root / f"run-{local_env.runs}" / "load" / f"local-{profile}"
    return json.loads((path / "summary.json").read_text())


def synthetic_users(local_env, run_id: str) -> list[str]:
    with sqlite3.connect(local_env.state_dir / "learning_assistant.db") as conn:
        rows = conn.execute("SELECT email FROM users WHERE email LIKE ?", (f"pd-{run_id}-%",))
        return [row[0] for row in rows]


def test_a_healthy_release_passes_the_performance_suite_and_the_journeys(local_env, monkeypatch):
    local_env.platform.deploy("1.0.0")
    # One load per page keeps this short; CI's `pytest --target local` runs the default three.
    monkeypatch.setenv("POSTDEPLOY_LOCAL_VITALS_RUNS", "1")
    # The canary checks need a baseline or a history (tests/test_canary_local.py).
    run = local_env.run(
        "--run-id", "perfhealthy", "--deselect", f"{PERFORMANCE}/test_canary.py",
        suites=(PERFORMANCE, JOURNEYS),
    )  # fmt: skip
    assert run.returncode == 0, run.output[-4000:]
    outcomes = cases(local_env)
    assert set(outcomes.values()) == {"passed"}, outcomes
    assert len(outcomes) == 23
    assert run.target()["gate"] == "passed"
    summary = load_summary(local_env)
    assert summary["exit_code"] == 0
    assert not summary["aborted"]
    assert summary["requests"] >= summary["planned_requests"] == 750
    # journey users and the load test's accounts were all deleted
    assert synthetic_users(local_env, "perfhealthy") == []


#: fault -> (suite subset, -k selection, checks that must fail, checks that must pass, words
#: every failure message must contain)
FAULTS = {
    "slow_endpoint": (
        RESPONSE_TIMES,
        "lessons or health",
        {f"{SLO}[local-lessons]"},
        {f"{SLO}[local-health]"},
        ("GET /api/learning/content: p95", "stopped early"),
    ),
    "error_burst": (LOAD, "", {LOAD_CHECK}, set(), ("error rate", "500")),
    "uncompressed_assets": (
        STATIC,
        "",
        {COMPRESSION},
        {CACHING, BUDGET},
        ("sent uncompressed", "/static/app.js"),
    ),
    "static_uncached": (
        STATIC,
        "",
        {CACHING},
        {COMPRESSION, BUDGET},
        ("Cache-Control: no-store", "no validator"),
    ),
    "page_bloat": (STATIC, "", {BUDGET}, {COMPRESSION, CACHING}, ("the landing page (/) weighs",)),
    "journey_broken": (
        JOURNEYS,
        "",
        {LESSON, WHOLE_JOURNEY},
        {REGISTRATION, LOGIN_LOGOUT},
        ("progress-completed",),
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_caught_by_its_check(local_env, fault, monkeypatch):
    suite, selection, must_fail, must_pass, words = FAULTS[fault]
    monkeypatch.setenv("POSTDEPLOY_LOCAL_PERFORMANCE_WARMUP", "0")  # the slow endpoint: 2.5 s each
    local_env.platform.deploy("1.1.0", [fault])
    run = local_env.run(*(["-k", selection] if selection else []), suites=(suite,))
    outcomes = cases(local_env)
    failed = {name for name, outcome in outcomes.items() if outcome == "failed"}
    passed = {name for name, outcome in outcomes.items() if outcome == "passed"}
    assert must_fail <= failed, f"not caught: {must_fail - failed}\n{run.output[-4000:]}"
    assert must_pass <= passed, f"collateral: {must_pass - passed}\n{run.output[-4000:]}"
    kinds = {f["test"].rsplit("::", 1)[-1]: f["kind"] for f in run.target()["failures"]}
    for name in must_fail:
        assert kinds.get(name) == "failed", f"{name} is {kinds.get(name)}, not failed"
        text = message(local_env, name)
        for word in words:
            assert word in text, f"{name}: {word!r} not in the failure message:\n{text[:2000]}"
    assert run.returncode == 1


def test_web_vitals_name_the_metric_each_fault_breaks(local_env, monkeypatch):
    local_env.platform.deploy("1.1.0", ["slow_lcp", "layout_shift", "slow_interaction"])
    monkeypatch.setenv("POSTDEPLOY_LOCAL_VITALS_RUNS", "1")  # the median of 3 is for healthy runs
    run = local_env.run("-k", "landing or dashboard", suites=(VITALS,))
    outcomes = cases(local_env)
    landing, dashboard = f"{VITALS_CHECK}[local-landing]", f"{VITALS_CHECK}[local-dashboard]"
    assert outcomes[landing] == outcomes[dashboard] == "failed", run.output[-4000:]
    landing_problems = message(local_env, landing).split("(median")[0]
    dashboard_problems = message(local_env, dashboard).split("(median")[0]
    # slow_lcp: the hero image arrives late on the landing page, nothing else is wrong there
    assert "LCP" in landing_problems
    assert "CLS" not in landing_problems
    assert "INP" not in landing_problems
    # layout_shift and slow_interaction: both on the dashboard, each named by its metric
    assert "CLS" in dashboard_problems
    assert "INP" in dashboard_problems
    assert "LCP" not in dashboard_problems


def test_a_broken_deployment_is_not_hammered_the_load_run_aborts_early(local_env):
    local_env.platform.deploy("1.1.0", ["health_down"])  # a third of the requests fail
    run = local_env.run(suites=(LOAD,))
    assert cases(local_env)[LOAD_CHECK] == "failed", run.output[-4000:]
    assert "the run was aborted: error rate" in message(local_env, LOAD_CHECK)
    summary = load_summary(local_env)
    assert summary["aborted"]
    assert summary["exit_code"] == 3
    # stopped by the error rate, not by the quota or the clock: before the profile's requests
    # were all sent and before its shortest duration. (How many went out before the watcher's
    # next look - every 0.5 s - depends on how fast the machine is at that moment.)
    assert summary["requests"] < summary["planned_requests"], summary
    assert summary["run_s"] < load.plans().PLANS[summary["profile"]].min_s, summary


def test_load_runs_distributed_with_a_master_and_workers(local_env):
    local_env.platform.deploy("1.0.0")
    run = local_env.run("--load-workers", "2", "--run-id", "perfworkers", suites=(LOAD,))
    assert run.returncode == 0, run.output[-4000:]
    out_dir = local_env.reports_root / f"run-{local_env.runs}" / "load" / "local-quick"
    master_log = (out_dir / "master.log").read_text()
    assert "2 workers connected" in master_log
    assert "to 2 ready workers" in master_log
    assert (out_dir / "worker-1.log").exists()
    assert (out_dir / "worker-2.log").exists()
    cleanup = [json.loads(line) for line in (out_dir / "cleanup.jsonl").read_text().splitlines()]
    assert sum(r["created"] for r in cleanup) == sum(r["deleted"] for r in cleanup) >= 1
    assert synthetic_users(local_env, "perfworkers") == []


def test_a_misconfigured_run_fails_clearly_and_never_starts_locust(
    local_env, tmp_path, monkeypatch
):
    """A profile over the target's bounds, and no browser at all: one run, two messages."""
    local_env.platform.deploy("1.0.0")
    monkeypatch.setenv("POSTDEPLOY_LOCAL_LOAD_MAX_USERS", "20")
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-playwright-browsers"))
    monkeypatch.setenv("POSTDEPLOY_CHROMIUM", str(tmp_path / "no-chromium"))
    run = local_env.run(
        "--load-profile", "stress", "-k", "under_load or registers", suites=(LOAD, JOURNEYS)
    )
    assert run.returncode != 0
    outcomes = cases(local_env)
    assert outcomes[LOAD_CHECK] == outcomes[REGISTRATION] == "failed", run.output[-4000:]
    assert "needs 100 users but [targets.local.load] max_users = 20" in run.output
    out_dir = local_env.reports_root / f"run-{local_env.runs}" / "load" / "local-stress"
    assert not (out_dir / "master.log").exists()  # Locust was never started
    assert "python -m playwright install chromium" in run.output
    assert "apt-get install chromium" in run.output
    # the harness, not the product, is at fault: never a pass, never a rollback
    assert run.target()["gate"] == "inconclusive"
