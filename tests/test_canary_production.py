"""The canary judge on the production shape: instances on two releases behind one edge.

``postdeploy local deploy VERSION --canary 1 --target local-prod`` replaces instance 1 only;
instance 2 keeps the previous release. ``local-prod`` sets ``[canary] baseline_instance =
"auto"``, so the baseline check compares the instances on the newest release (the canary arm)
with those on the release before (the baseline arm), each addressed through the edge by its
routing header (``X-Postdeploy-Instance``). One deployment serves the whole module; runs use
few samples (a 30 % slowdown needs few).

* a canary instance with ``latency_regression`` fails the check (kind ``failed``) naming the
  regressed metrics; a healthy canary instance passes;
* with ``--rollback auto`` the failed canary check rolls the release back through the local
  driver, and the verification passes: it re-runs the gating checks against the restored
  release, where every instance serves one release, so the canary check is *not judged*
  (skipped, never passed) and the other gating checks carry the verification;
* the page metrics per arm (N loads of each key page in Chromium, each instance addressed by
  its header): a healthy canary's pages pass; ``slow_lcp``, ``layout_shift`` and
  ``slow_interaction`` on the canary instance fail the check naming ``landing:lcp``,
  ``dashboard:cls`` and ``dashboard:inp``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SuiteRun, check_name
from tests.test_local_production import TARGET, ProdEnv, prod_env

CANARY = "suites/performance/test_canary.py"
HEALTH = "suites/monitoring/test_health.py"
BASELINE_CHECK = "test_the_release_is_not_worse_than_its_baseline"
SAMPLES = "150"
#: Page metrics only where a test is about them (each load costs about a second).
CANARY_ENV = {
    "POSTDEPLOY_LOCAL_PROD_CANARY_SAMPLES": SAMPLES,
    "POSTDEPLOY_LOCAL_PROD_CANARY_PAGE_LOADS": "0",
}
#: The page tests: few API samples (the API part is proven above), the default page loads.
PAGES_ENV = {
    "POSTDEPLOY_LOCAL_PROD_CANARY_SAMPLES": "60",
    "POSTDEPLOY_LOCAL_PROD_CANARY_PAGES": "landing,dashboard",
}


@pytest.fixture(scope="module")
def prod() -> Iterator[ProdEnv]:
    yield from prod_env()


def _run(
    prod: ProdEnv, *args: str, suites: tuple[str, ...] = (CANARY,), env: dict | None = None
) -> SuiteRun:
    run = prod.run(*args, suites=suites, env=env or CANARY_ENV)
    assert isinstance(run, SuiteRun)
    return run


def _judgement(run: SuiteRun) -> dict:
    return next(j for j in run.target(TARGET)["canary"] if BASELINE_CHECK in j["test"])


def test_a_slow_canary_instance_fails_the_judge_naming_the_metric(prod: ProdEnv) -> None:
    platform = prod.platform
    platform.deploy("1.0.0")
    platform.deploy("1.1.0", ["latency_regression"], canary=1)
    assert {(i.id, i.version) for i in platform.read_instances()} == {
        ("1", "1.1.0"),
        ("2", "1.0.0"),
    }
    run = _run(prod, "-k", BASELINE_CHECK)
    assert run.outcomes.get(BASELINE_CHECK) == "failed", run.output[-4000:]
    failure = next(f for f in run.target(TARGET)["failures"] if BASELINE_CHECK in f["test"])
    assert failure["kind"] == "failed"
    message = failure["message"]
    assert "regressed against baseline arm" in message, message
    assert "X-Postdeploy-Instance: 2" in message, message  # the baseline: the old instance
    assert ":latency: median" in message, message
    judged = _judgement(run)
    assert judged["result"] == "fail"
    assert judged["against"].endswith("(release 1, 1.0.0)"), judged["against"]
    assert any(m.endswith(":latency") for m in judged["regressions"]), judged["regressions"]


def test_a_healthy_canary_instance_passes_with_its_pages(prod: ProdEnv) -> None:
    """The subject is the page metrics: only they are critical here. On this shared machine a
    burst of other work can slow one instance through one endpoint's block of requests (an
    A/A run here once flagged record-session +31 % at N = 60; five more passed, see
    docs/canary.md), which the API's own healthy test and benchmarks/bench_judge.py --e2e
    measure; a non-critical API blip leaves the score far above marginal."""
    platform = prod.platform
    platform.deploy("1.0.0")
    platform.deploy("1.1.0", canary=1)
    lean = {
        **PAGES_ENV,
        "POSTDEPLOY_LOCAL_PROD_CANARY_PAGES": "landing",
        "POSTDEPLOY_LOCAL_PROD_CANARY_PAGE_LOADS": "8",
        "POSTDEPLOY_LOCAL_PROD_CANARY_CRITICAL_METRICS": "landing:*,pages:*",
    }
    run = _run(prod, "-k", BASELINE_CHECK, env=lean)
    assert run.returncode == 0, run.output[-4000:]
    judged = _judgement(run)
    assert judged["result"] in ("pass", "marginal"), judged["reason"]
    pages = {m["metric"]: m for m in judged["metrics"] if m["endpoint"] in ("landing", "pages")}
    assert {"landing:lcp", "landing:cls", "landing:ttfb", "pages:errors"} <= set(pages), pages
    assert {m["classification"] for m in pages.values()} == {"pass"}, pages
    assert pages["landing:lcp"]["canary"]["samples"] == 8


def test_page_regressions_of_a_canary_instance_fail_the_judge_naming_each(prod: ProdEnv) -> None:
    """LCP (the hero image 3 s late), CLS (a late banner) and INP (a blocked click): each page
    metric of the class caught by the same judge, on the canary instance only."""
    platform = prod.platform
    platform.deploy("1.0.0")
    platform.deploy("1.1.0", ["slow_lcp", "layout_shift", "slow_interaction"], canary=1)
    run = _run(prod, "-k", BASELINE_CHECK, env=PAGES_ENV)
    assert run.outcomes.get(BASELINE_CHECK) == "failed", run.output[-4000:]
    failure = next(f for f in run.target(TARGET)["failures"] if BASELINE_CHECK in f["test"])
    assert failure["kind"] == "failed"
    for metric in ("landing:lcp: median", "dashboard:cls: median", "dashboard:inp: median"):
        assert metric in failure["message"], failure["message"]


def test_a_failed_canary_rolls_back_and_the_verification_passes(prod: ProdEnv) -> None:
    platform = prod.platform
    good = platform.deploy("2.0.0")
    gating = ("-m", "gating", "--rollback", "auto")
    # every instance on one release: the canary check is not judged, never passed; the
    # passing gate leaves the data marker the verification reads back
    passing = _run(prod, *gating, suites=(CANARY, HEALTH))
    assert passing.returncode == 0, passing.output[-3000:]
    assert passing.outcomes[BASELINE_CHECK] == "skipped"
    bad = platform.deploy("2.1.0", ["latency_regression"], canary=1)
    run = _run(prod, *gating, suites=(CANARY, HEALTH))
    verdict = run.target(TARGET)
    assert verdict["gate"] == "failed", run.output[-3000:]
    assert [f["kind"] for f in verdict["failures"]] == ["failed"], verdict["failures"]
    rollback = verdict["rollback"]
    assert rollback["status"] == "succeeded", rollback
    assert rollback["from_release"]["id"] == str(bad.id)
    assert rollback["to_release"]["id"] == str(good.id)
    verification = rollback["verification"]
    assert verification["status"] == "passed", verification
    rerun = {check_name(c["test"]): c["outcome"] for c in verification["checks"]}
    assert rerun[BASELINE_CHECK] == "skipped", rerun
    assert "passed" in rerun.values(), rerun
    assert {(i.version, tuple(i.faults)) for i in platform.read_instances()} == {("2.0.0", ())}
