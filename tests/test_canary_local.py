"""The canary judge end to end on real local deployments: a stable release on one local
platform (the baseline arm), the release under validation on another (the target).

* ``latency_regression`` (key endpoints ~30 % slower, far under the 2 s SLO) fails the canary
  check with the regressed metrics and their figures, while the absolute SLO check passes;
* a healthy canary against its stable release passes (20 runs of 20: benchmarks/bench_judge.py
  --e2e);
* with ``--compare-with previous:K`` and fewer than K usable earlier runs, the check is not
  judged (skipped), never passed; every run is stored (``record_history`` is on by default),
  the history bounded to ``history_keep`` runs.

Runs use fewer samples than the default (``[canary] samples``): a 30 % slowdown needs few.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from postdeploy.contract import KEY_ENDPOINTS
from postdeploy.local.platform import LocalPlatform
from postdeploy.performance.history import History
from postdeploy.sysutil import free_port

from .conftest import REPO

CANARY = "suites/performance/test_canary.py"
SLO = "suites/performance/test_response_times.py"
BASELINE_CHECK = "test_the_release_is_not_worse_than_its_baseline"
HISTORY_CHECK = "test_the_release_is_not_worse_than_earlier_runs"
SAMPLES = "150"


@pytest.fixture(scope="module")
def stable(tmp_path_factory):
    """The stable release 1.0.0 on a local platform of its own: the baseline arm."""
    platform = LocalPlatform(
        f"https://127.0.0.1:{free_port()}", state_dir=tmp_path_factory.mktemp("stable")
    )
    platform.deploy("1.0.0")
    yield platform
    platform.stop()


def canary_env(stable: LocalPlatform | None = None) -> dict[str, str]:
    # the page metrics are proven on the production shape (tests/test_canary_production.py)
    env = {"POSTDEPLOY_LOCAL_CANARY_SAMPLES": SAMPLES, "POSTDEPLOY_LOCAL_CANARY_PAGE_LOADS": "0"}
    if stable is not None:
        env["POSTDEPLOY_LOCAL_CANARY_BASELINE_CA_FILE"] = str(stable.ca_file)
    return env


def judgement(run, check: str) -> dict:
    return next(j for j in run.target()["canary"] if check in j["test"])


def test_latency_regression_fails_the_canary_while_the_slos_pass(local_env, stable):
    local_env.platform.deploy("1.1.0", ["latency_regression"])
    run = local_env.run(
        "--baseline", stable.url, suites=(CANARY, SLO), env=canary_env(stable)
    )  # fmt: skip
    assert BASELINE_CHECK in run.failed(), run.output[-4000:]
    assert "test_response_time_p95_is_within_the_slo" in run.passed()
    verdict = run.target()
    assert verdict["gate"] == "failed"
    failure = next(f for f in verdict["failures"] if BASELINE_CHECK in f["test"])
    assert failure["kind"] == "failed"
    assert "regressed against baseline arm https://127.0.0.1:" in failure["message"]
    assert ":latency: median" in failure["message"]
    judged = judgement(run, BASELINE_CHECK)
    assert judged["result"] == "fail"
    latency = [m for m in judged["metrics"] if m["kind"] == "latency"]
    slower = [m for m in latency if m["classification"] == "regression"]
    assert len(slower) >= len(latency) // 2, [m["summary"] for m in latency]
    assert all(0.1 < m["effect"] < 1.0 for m in slower)
    assert "canary regression: " in run.output  # one line each in the terminal summary
    # every run is recorded (record_history is on by default), the canary arm's samples reused;
    # a release that failed its baseline check is never a baseline for later runs
    stored = History(local_env.state_dir / "history").runs("local")[0]
    assert stored.outcome == "failed", stored
    assert not stored.usable
    schema = json.loads((REPO / "schemas" / "verdict.schema.json").read_text())
    jsonschema.validate(run.verdict, schema)


def test_a_healthy_canary_passes_against_its_stable_release(local_env, stable):
    local_env.platform.deploy("1.0.0")
    run = local_env.run("--baseline", stable.url, suites=(CANARY,), env=canary_env(stable))
    assert run.returncode == 0, run.output[-4000:]
    judged = judgement(run, BASELINE_CHECK)
    assert judged["result"] == "pass"
    assert judged["score"] >= judged["pass_score"]
    assert run.outcomes[HISTORY_CHECK] == "skipped"  # no --compare-with: stored, not judged
    stored = History(local_env.state_dir / "history").runs("local")[0]
    assert (stored.outcome, stored.endpoints) == ("not judged", len(KEY_ENDPOINTS))
    health = next(m for m in judged["metrics"] if m["metric"] == "health:latency")
    stored_median = stored.samples()["health"].summary()["median_ms"]
    assert stored_median == pytest.approx(health["canary"]["median_ms"], abs=1e-3)  # reused


def test_an_unreachable_baseline_is_broken_never_failed(local_env):
    local_env.platform.deploy("1.0.0")
    nobody = f"https://127.0.0.1:{free_port()}"
    run = local_env.run("--baseline", nobody, "-k", BASELINE_CHECK, suites=(CANARY,))
    verdict = run.target()
    assert verdict["gate"] == "inconclusive", verdict
    assert [f["kind"] for f in verdict["failures"]] == ["broken"]
    assert "cannot serve as the reference" in verdict["failures"][0]["message"]


def test_too_few_earlier_runs_are_not_judged_never_passed(local_env, tmp_path):
    """The history check judges only against ``K`` usable earlier runs; with fewer it is
    skipped as not judged. (Judging a slow release against stored runs is load-sensitive on a
    shared machine - stored runs cannot cancel the drift a live baseline cancels - so that
    comparison is measured by benchmarks/bench_judge.py, not asserted here.)"""
    history_dir = tmp_path / "history"
    history = [f"--history-dir={history_dir}", "-k", HISTORY_CHECK]
    keep_two = {**canary_env(), "POSTDEPLOY_LOCAL_CANARY_HISTORY_KEEP": "2"}
    local_env.platform.deploy("1.0.0")
    for ask in (True, False, False):
        # the first asks for a comparison with no history; the others only record
        args = [*history, "--compare-with=previous:3"] if ask else history
        run = local_env.run(*args, suites=(CANARY,), env=keep_two)
        assert run.outcomes[HISTORY_CHECK] == "skipped", run.output[-4000:]
    # three runs recorded, the history bounded to the newest two ([canary] history_keep)
    assert len(History(history_dir).runs("local")) == 2
    run = local_env.run(*history, "--compare-with=previous:4", suites=(CANARY,), env=keep_two)
    assert run.outcomes[HISTORY_CHECK] == "skipped", run.output[-4000:]
    listed = local_env.cli("history", f"--history-dir={history_dir}", "list")
    assert listed.returncode == 0, listed.stderr


def test_browser_trouble_leaves_the_pages_unmeasured_broken_unless_the_api_regressed(
    local_env, stable, tmp_path
):
    """No Chromium: the page metrics cannot be measured. A healthy release is then broken
    (never passed: the judgement is incomplete); a release whose endpoints regressed still
    fails - what the target answered decides - and says the pages were not measured."""
    no_browser = {
        **canary_env(stable),
        "POSTDEPLOY_LOCAL_CANARY_PAGE_LOADS": "8",
        "POSTDEPLOY_LOCAL_CANARY_PAGES": "landing",
        "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "no-playwright-browsers"),
        "POSTDEPLOY_CHROMIUM": str(tmp_path / "no-chromium"),
    }
    args = ("--baseline", stable.url, "-k", BASELINE_CHECK)
    local_env.platform.deploy("1.0.0")
    run = local_env.run(*args, suites=(CANARY,), env=no_browser)
    verdict = run.target()
    assert verdict["gate"] == "inconclusive", run.output[-3000:]
    assert [f["kind"] for f in verdict["failures"]] == ["broken"]
    assert "no browser" in verdict["failures"][0]["message"]
    local_env.platform.deploy("1.1.0", ["latency_regression"])
    run = local_env.run(*args, suites=(CANARY,), env=no_browser)
    failure = next(f for f in run.target()["failures"] if BASELINE_CHECK in f["test"])
    assert failure["kind"] == "failed", run.output[-3000:]
    assert "page metrics not measured: no browser" in failure["message"]
    assert ":latency: median" in failure["message"]
