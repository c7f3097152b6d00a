"""The canary judge on synthetic samples, its configuration, the traffic plan and the history.

Latencies are log-normal (the shape of loopback latencies), seeded: every test is
deterministic. The false-alarm and power figures come from benchmarks/bench_judge.py on
recorded latencies; these tests pin the behaviour each figure relies on.
"""

from __future__ import annotations

import gzip
import http.server
import json
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from typing import ClassVar

import numpy as np
import pytest

from postdeploy.config import SECTIONS, Section, Target
from postdeploy.contract import KEY_ENDPOINTS, PATHS
from postdeploy.performance.canary import (
    BASELINE,
    CANARY,
    Arm,
    BaselineUnavailable,
    BudgetTooSmall,
    CanaryInconclusive,
    NoBaseline,
    Plan,
    arms_for,
    collect,
    conclude,
    parse_criteria,
    plan_traffic,
)
from postdeploy.performance.history import History, HistoryError
from postdeploy.performance.judge import (
    ArmSamples,
    Classification,
    Criteria,
    Kind,
    PageSamples,
    Result,
    control_limits,
    expected_range,
    holm,
    judge,
    pool,
    run_to_run_drift,
)
from postdeploy.performance.options import parse_compare_with
from postdeploy.performance.plot import distributions_svg
from postdeploy.reporting.channels import Notification, pagerduty_event, slack_payload
from postdeploy.rollback.base import Instance

from .conftest import REPO

ENDPOINTS = ("health", "lessons", "me", "landing-page")
N = 200
MEDIAN_MS = 8.0
SIGMA = 0.3


def arm(rng, n=N, scale=1.0, errors=0, outliers=0) -> ArmSamples:
    values = rng.lognormal(np.log(MEDIAN_MS), SIGMA, n - errors) * scale
    values[:outliers] *= 100
    return ArmSamples.of(values, errors)


def healthy(rng, n=N) -> dict[str, tuple[ArmSamples, ArmSamples]]:
    return {name: (arm(rng, n), arm(rng, n)) for name in ENDPOINTS}


def test_two_arms_of_the_same_release_pass_with_a_full_score():
    judgement = judge(healthy(np.random.default_rng(1)), Criteria(seed=1))
    assert judgement.result is Result.PASS, judgement.table()
    assert judgement.score == 100
    assert len(judgement.metrics) == len(ENDPOINTS) * 4 + 1  # + the pooled error rate


def test_one_endpoint_twenty_percent_slower_is_a_regression_naming_it():
    rng = np.random.default_rng(2)
    pairs = healthy(rng)
    pairs["lessons"] = (arm(rng), arm(rng, scale=1.2))
    judgement = judge(pairs, Criteria(seed=2))
    assert judgement.result is Result.FAIL
    latency = next(m for m in judgement.metrics if m.name == "lessons:latency")
    assert latency.classification is Classification.REGRESSION
    assert 0.1 < latency.effect < 0.3
    assert latency.interval[0] < latency.effect < latency.interval[1]
    assert {m.endpoint for m in judgement.regressions} == {"lessons"}
    with pytest.raises(AssertionError, match=r"lessons:latency: median .* ms -> .* ms.*\+\d"):
        conclude(judgement, "the baseline")


def test_a_significant_increase_within_the_allowed_one_passes():
    rng = np.random.default_rng(3)
    pairs = {name: (arm(rng, 2000), arm(rng, 2000, scale=1.05)) for name in ENDPOINTS}
    judgement = judge(pairs, Criteria(seed=3))
    latency = [m for m in judgement.metrics if m.kind is Kind.LATENCY]
    assert all(m.adjusted_p < 0.01 for m in latency)  # clearly slower ...
    assert judgement.result is Result.PASS  # ... but by less than the allowed +10 %


def test_errors_on_a_zero_error_baseline_are_a_regression():
    rng = np.random.default_rng(4)
    pairs = {name: (arm(rng), arm(rng, errors=4)) for name in ENDPOINTS}  # 2 % errors
    judgement = judge(pairs, Criteria(seed=4))
    assert judgement.result is Result.FAIL
    assert [m.name for m in judgement.regressions] == ["all:errors"]
    assert "errors 0/800 -> 16/800" in judgement.lines()[0]


def test_a_few_huge_outliers_are_caught_by_the_tail():
    rng = np.random.default_rng(5)
    pairs = healthy(rng)
    pairs["me"] = (arm(rng), arm(rng, outliers=14))  # 7 % of requests 100x slower
    judgement = judge(pairs, Criteria(seed=5))
    assert judgement.result is Result.FAIL
    kinds = {m.kind for m in judgement.regressions}
    assert kinds & {Kind.P95, Kind.P99}, judgement.table()


def test_too_few_samples_are_inconclusive_never_passed():
    rng = np.random.default_rng(6)
    pairs = healthy(rng)
    pairs["me"] = (arm(rng, 20), arm(rng))
    judgement = judge(pairs, Criteria(seed=6))
    assert judgement.result is Result.INCONCLUSIVE
    assert {m.name for m in judgement.inconclusive} == {
        "me:latency",
        "me:p95",
        "me:p99",
        "me:errors",
    }
    with pytest.raises(CanaryInconclusive, match="me:latency"):
        conclude(judgement, "the baseline")


def test_a_regression_of_a_non_critical_metric_only_lowers_the_score():
    rng = np.random.default_rng(7)
    pairs = healthy(rng)
    pairs["lessons"] = (arm(rng), arm(rng, scale=1.5))
    criteria = Criteria(critical=("*:errors",), pass_score=95, marginal_score=75, seed=7)
    judgement = judge(pairs, criteria)
    assert judgement.regressions
    assert judgement.score < 95
    assert judgement.result in (Result.MARGINAL, Result.PASS)
    conclude(judgement, "the baseline")  # marginal is reported, not failed


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == []


def test_verdict_fields_explain_each_metric():
    judgement = judge(healthy(np.random.default_rng(8)), Criteria(seed=8))
    data = judgement.to_dict()
    metric = data["metrics"][0]
    for key in ("baseline", "canary", "effect", "interval", "adjusted_p", "threshold"):
        assert key in metric
    assert {"samples", "median_ms", "p95_ms"} <= set(metric["baseline"])
    assert data["correction"] == "holm"
    assert data["false_alarm_rate"] == 0.01


def test_bad_criteria_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="between 0 and 1"):
        Criteria(alpha=1.5)
    with pytest.raises(ValueError, match="marginal <= pass"):
        Criteria(pass_score=50, marginal_score=80)
    assert parse_criteria(["p95 <= +10%", "errors <= +0.1pp"], "t") == {
        "p95": pytest.approx(0.1),
        "errors": pytest.approx(0.1),
    }
    with pytest.raises(ValueError, match="'p95 <= \\+10%'"):
        parse_criteria(["p95 < 10"], "targets.toml")
    with pytest.raises(ValueError, match="previous:K"):
        parse_compare_with("last:3")
    assert parse_compare_with("previous") == 1
    assert parse_compare_with("previous:3") == 3


def test_the_plan_fits_the_budget_or_says_how_to_fix_it():
    assert plan_traffic(200, 5, 100_000, 50).samples == 200
    assert plan_traffic(200, 5, 11 * 105, 50).samples == 100
    with pytest.raises(BudgetTooSmall, match="raise \\[canary\\] max_requests"):
        plan_traffic(200, 5, 11 * 40, 50)


def test_an_unreachable_baseline_is_a_harness_problem_not_a_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = Target("t", "local", f"http://127.0.0.1:{port}", timeout_s=2, connect_timeout_s=1)
    arms = [Arm(BASELINE, f"http://127.0.0.1:{port}"), Arm(CANARY, target.url)]
    with pytest.raises(BaselineUnavailable, match=r"baseline arm .* cannot serve as the reference"):
        collect(target, arms, plan_traffic(60, 0, 10_000, 50), "t")
    assert not issubclass(BaselineUnavailable, AssertionError)


def test_history_keeps_samples_pools_usable_runs_and_honours_invalidation(tmp_path):
    rng = np.random.default_rng(9)
    store = History(tmp_path)
    for run_id, outcome in (("r1", "passed"), ("r2", "failed"), ("r3", "not judged")):
        store.record("local", "quick", run_id, {"health": arm(rng, 100)}, outcome)
    store.record("local", "smoke", "r4", {"health": arm(rng, 100)}, "passed")
    assert [r.run_id for r in store.baseline("local", "quick", 3)] == ["r3", "r1"]
    assert store.runs("local", "quick")[0].samples()["health"].requests == 100
    pooled = pool([run.samples() for run in store.baseline("local", "quick", 2)])
    assert pooled["health"].requests == 200
    store.invalidate("r1", "incident 42")
    assert [r.run_id for r in store.baseline("local", "quick", 3)] == ["r3"]
    assert store.find("r1")[0].invalidated == "incident 42"


def test_a_judgement_pools_only_stored_runs_of_its_own_size(tmp_path):
    """Samples go endpoint by endpoint and one endpoint's writes grow what the next reads, so a
    run of 1,000 per endpoint is not comparable with runs of 200."""
    rng = np.random.default_rng(10)
    store = History(tmp_path)
    for run_id, size in (("small-1", 200), ("big", 1000), ("small-2", 200)):
        store.record("local", "quick", run_id, {"health": arm(rng, size)}, "passed")
    assert [r.run_id for r in store.baseline("local", "quick", 3, per_endpoint=200)] == [
        "small-2",
        "small-1",
    ]
    assert [r.run_id for r in store.baseline("local", "quick", 3, per_endpoint=1000)] == ["big"]
    assert len(store.baseline("local", "quick", 3)) == 3  # no size given: any


def test_runs_stored_endpoint_by_endpoint_are_not_pooled_with_round_robin_runs(tmp_path):
    """Runs stored before the samples went round-robin (format 1, no ``sampling``) have another
    shape: a burst of the host's load could fall on one endpoint's whole block."""
    rng = np.random.default_rng(11)
    store = History(tmp_path)
    store.record("local", "quick", "old", {"health": arm(rng, 200)}, "passed")
    path = store.runs("local", "quick")[0].path
    with gzip.open(path, "rt", encoding="utf-8") as file:
        document = json.load(file)
    del document["sampling"]
    document["format"] = 1
    with gzip.open(path, "wt", encoding="utf-8") as file:
        json.dump(document, file)
    store.record("local", "quick", "new", {"health": arm(rng, 200)}, "passed")
    assert [r.sampling for r in store.runs("local", "quick")] == [
        "round-robin",
        "endpoint by endpoint",
    ]
    assert [r.run_id for r in store.baseline("local", "quick", 3)] == ["new"]


class _OrderRecorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200 and notes which arm asked for what, in order."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.headers.get("X-Arm", ""), self.path))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_samples_go_round_robin_over_the_endpoints_and_abba_over_the_arms():
    """One request per endpoint per round, so a burst of load touches every endpoint a little;
    within a round each endpoint's pair of requests starts with the arm that went second in the
    round before."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OrderRecorder)
    _OrderRecorder.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        target = Target("t", "local", url, timeout_s=5, connect_timeout_s=2)
        arms = [
            Arm(BASELINE, url, headers=(("X-Arm", "b"),)),
            Arm(CANARY, url, headers=(("X-Arm", "c"),)),
        ]
        endpoints = tuple(e for e in KEY_ENDPOINTS if e.name in ("health", "lessons", "lesson"))
        samples = collect(target, arms, Plan(samples=2, warmup=1, endpoints=endpoints), "t")
    finally:
        server.shutdown()
        server.server_close()
    paths = [e.path for e in endpoints]
    checked = [("b", PATHS.health), ("c", PATHS.health)]  # each arm answers before any traffic
    warmup = [(a, path) for path in paths for a in "bc"]
    round_1 = [(a, path) for path in paths for a in "bc"]
    round_2 = [(a, path) for path in paths for a in "cb"]
    assert _OrderRecorder.seen == checked + warmup + round_1 + round_2
    assert {name: [s.requests for s in pair] for name, pair in samples.items()} == {
        e.name: [2, 2] for e in endpoints
    }


def _stored_runs(rng, scales):
    """Stored runs of one healthy release, each at its own machine speed (``scales``)."""
    return [{name: arm(rng, scale=scale) for name in ENDPOINTS} for scale in scales]


def test_earlier_runs_that_differ_among_themselves_widen_the_allowed_increase():
    """Runs minutes apart on a shared host differ (here by up to 13 %) more than any one run's
    spread says: a healthy run inside that drift passes against them, a regression beyond the
    allowed increase *plus* the drift fails, and without the drift the same healthy run would be
    a false alarm."""
    rng = np.random.default_rng(7)
    runs = _stored_runs(rng, (1.0, 1.1, 0.97))
    reference = pool(runs)
    criteria = Criteria(seed=7)
    drift = run_to_run_drift(runs, criteria)
    assert 0.1 < drift["lessons:latency"] < 0.45, drift

    healthy_now = {name: (reference[name], arm(rng, scale=1.15)) for name in ENDPOINTS}
    assert judge(healthy_now, criteria).result is Result.FAIL  # what pooling alone said
    judged = judge(healthy_now, replace(criteria, drift=drift))
    assert judged.result is Result.PASS, [m.line() for m in judged.regressions]
    lessons = next(m for m in judged.metrics if m.name == "lessons:latency")
    assert "of run-to-run drift" in lessons.note

    slow = {name: (reference[name], arm(rng, scale=1.15)) for name in ENDPOINTS}
    slow["lessons"] = (reference["lessons"], arm(rng, scale=2.0))
    judged = judge(slow, replace(criteria, drift=drift))
    assert judged.result is Result.FAIL
    assert {m.name for m in judged.regressions} >= {"lessons:latency"}


def test_whole_runs_set_a_control_limit_on_every_endpoint():
    """A host's load moves every endpoint of a run together. The runs' levels (geometric mean
    over the endpoints) set a Shewhart limit - 3 sigma, sigma from the range over d2 - that
    applies to every endpoint, even one whose three runs happen to agree: a healthy run 15 %
    slower everywhere passes, and an endpoint 2x slower still fails, named."""
    assert [round(expected_range(n), 3) for n in (2, 3, 5, 10)] == [1.128, 1.693, 2.326, 3.078]
    rng = np.random.default_rng(12)
    runs = _stored_runs(rng, (1.0, 1.1, 0.97))
    for run in runs:
        run["lessons"] = arm(rng)  # this endpoint's three runs agree
    limits = control_limits(runs, min_samples=50)
    levels = [np.mean([np.log(np.median(run[n].latencies_ms)) for n in ENDPOINTS]) for run in runs]
    expected = np.expm1(3 * np.sqrt(1 + 1 / 3) / 1.693 * (max(levels) - min(levels)))
    assert limits[Kind.LATENCY] == pytest.approx(expected, rel=1e-3)
    assert 0.1 < limits[Kind.LATENCY] < 0.45, limits
    criteria = Criteria(seed=12)
    drift = run_to_run_drift(runs, criteria)
    assert drift["lessons:latency"] == pytest.approx(limits[Kind.LATENCY])
    reference = pool(runs)

    healthy_now = {name: (reference[name], arm(rng, scale=1.15)) for name in ENDPOINTS}
    assert judge(healthy_now, criteria).result is Result.FAIL  # pooling alone
    judged = judge(healthy_now, replace(criteria, drift=drift))
    assert judged.result is Result.PASS, [m.line() for m in judged.regressions]

    slow = dict(healthy_now)
    slow["lessons"] = (reference["lessons"], arm(rng, scale=2.0))
    judged = judge(slow, replace(criteria, drift=drift))
    assert judged.result is Result.FAIL
    assert "lessons:latency" in {m.name for m in judged.regressions}


def test_one_stored_run_adds_no_drift_and_identical_runs_only_their_sampling_noise():
    rng = np.random.default_rng(8)
    assert run_to_run_drift(_stored_runs(rng, (1.0,)), Criteria(seed=8)) == {}
    same = run_to_run_drift(_stored_runs(rng, (1.0, 1.0, 1.0)), Criteria(seed=8))
    assert max(same[f"{name}:latency"] for name in ENDPOINTS) < 0.1, same


def test_history_command_lists_shows_and_invalidates(tmp_path):
    History(tmp_path).record(
        "local", "quick", "r1", {"health": ArmSamples.of([5.0] * 60)}, "passed"
    )

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "postdeploy.cli", "history", "--history-dir", str(tmp_path),
             *args],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0
    assert "r1" in listed.stdout
    assert "passed" in listed.stdout
    assert "median 5.0 ms" in cli("show", "r1").stdout
    assert cli("invalidate", "r1", "--reason", "incident").returncode == 0
    assert "INVALIDATED (incident)" in cli("list").stdout
    missing = cli("show", "nope")
    assert missing.returncode == 1
    assert "postdeploy history list" in missing.stderr


def test_the_two_arms_are_drawn_side_by_side_for_the_report():
    rng = np.random.default_rng(10)
    svg = distributions_svg("lessons: baseline vs canary", arm(rng), arm(rng, scale=1.3))
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert svg.count("<rect") == 2
    assert "median" in svg
    assert "p95" in svg
    assert "no samples" in distributions_svg("t", arm(rng), ArmSamples((), 5, 5))


def test_notifications_carry_the_canary_regressions():
    line = "lessons:latency: median 8.0 ms -> 10.4 ms (n 200/200), +30.0% [...]"
    notification = Notification("local", "local", "https://127.0.0.1:1", "failed", canary=[line])
    assert line in json.dumps(slack_payload(notification))
    event = pagerduty_event(notification, "key")
    assert event["payload"]["custom_details"]["canary_regressions"] == [line]


def _with_canary(url: str = "https://edge:1", baseline_url: str = "", **canary) -> Target:
    values = {key: spec.default for key, spec in SECTIONS["canary"].items()}
    values.update(canary)
    return Target("t", "local", url, baseline_url=baseline_url,
                  sections={"canary": Section("canary", values)})  # fmt: skip


def _instance(iid: str, release: str, version: str) -> Instance:
    return Instance(iid, version, "started", {"X-Postdeploy-Instance": iid}, {"release": release})


def test_auto_instance_arms_are_the_previous_release_against_the_newest():
    target = _with_canary(baseline_instance="auto")
    fleet = [_instance("1", "12", "1.1.0"), _instance("2", "9", "1.0.0"),
             _instance("3", "9", "1.0.0")]  # fmt: skip
    baseline, canary = arms_for(target, None, fleet)
    assert [baseline.route(n) for n in range(3)] == [
        {"X-Postdeploy-Instance": "2"}, {"X-Postdeploy-Instance": "3"},
        {"X-Postdeploy-Instance": "2"},
    ]  # fmt: skip
    assert canary.routes == ((("X-Postdeploy-Instance", "1"),),)
    assert baseline.url == canary.url == target.url
    assert baseline.describe().endswith("X-Postdeploy-Instance: 2, 3 (release 9, 1.0.0)")
    # --baseline wins over the instances
    assert arms_for(target, "https://stable:2", fleet)[0].url == "https://stable:2"


def test_one_release_everywhere_is_not_judged_and_an_ambiguous_fleet_is_an_error():
    target = _with_canary(baseline_instance="auto")
    same = [_instance("1", "4", "2.0.0"), _instance("2", "4", "2.0.0")]
    with pytest.raises(NoBaseline, match=r"every instance of t serves release 4, 2\.0\.0"):
        arms_for(target, None, same)
    with pytest.raises(NoBaseline, match="no baseline - pass --baseline URL"):
        arms_for(_with_canary(), None, same)
    # the configured baseline_url stands in when the instances serve one release
    fallback = _with_canary(baseline_url="https://stable:2", baseline_instance="auto")
    assert arms_for(fallback, None, same)[0].url == "https://stable:2"
    unnumbered = [
        Instance("a", "1.1.0", headers={"h": "a"}),
        Instance("b", "1.0.0", headers={"h": "b"}),
    ]
    with pytest.raises(ValueError, match="cannot tell which is the canary"):
        arms_for(target, None, unnumbered)
    baseline, canary = arms_for(target, None, unnumbered, expected_version="1.1.0")
    assert (baseline.route(0), canary.route(0)) == ({"h": "b"}, {"h": "a"})


def _page(rng, n=10, lcp_ms=200.0, cls=0.0, inp=True, errors=0) -> PageSamples:
    values = {
        Kind.LCP: tuple(rng.lognormal(np.log(lcp_ms), 0.2, n)),
        Kind.CLS: (cls,) * n,
        Kind.TTFB: tuple(rng.lognormal(np.log(15.0), 0.3, n)),
    }
    if inp:
        values[Kind.INP] = tuple(float(x) for x in rng.choice([8.0, 16.0], n))
    return PageSamples(values, n + errors, errors)


def test_page_metrics_join_the_judgement_and_a_slow_lcp_is_a_regression():
    rng = np.random.default_rng(21)
    pages = {"landing": (_page(rng), _page(rng, lcp_ms=3200.0)), "login": (_page(rng), _page(rng))}
    judged = judge(healthy(rng), Criteria(seed=1), pages)
    assert judged.result is Result.FAIL
    assert [m.name for m in judged.regressions] == ["landing:lcp"]
    names = {m.name for m in judged.metrics}
    assert {"login:cls", "login:inp", "login:ttfb", "pages:errors"} <= names
    line = next(m for m in judged.metrics if m.name == "landing:lcp").line()
    assert "landing:lcp: median" in line
    assert "ms" in line


def test_healthy_pages_pass_and_a_layout_shift_is_an_absolute_regression():
    rng = np.random.default_rng(22)
    pages = {"landing": (_page(rng), _page(rng))}
    assert judge(healthy(rng), Criteria(seed=1), pages).result is Result.PASS
    shifted = {"dashboard": (_page(rng), _page(rng, cls=0.25))}
    judged = judge(healthy(rng), Criteria(seed=1), shifted)
    cls = next(m for m in judged.metrics if m.name == "dashboard:cls")
    assert cls.classification is Classification.REGRESSION
    assert cls.unit == "absolute"
    assert cls.effect == pytest.approx(0.25)
    assert "0.000 -> 0.250" in cls.line()


def test_few_page_loads_are_inconclusive_and_an_unmeasurable_inp_is_left_out():
    rng = np.random.default_rng(23)
    few = {"landing": (_page(rng, n=5), _page(rng, n=5))}
    judged = judge(healthy(rng), Criteria(seed=1), few)
    assert judged.result is Result.INCONCLUSIVE
    assert "landing:lcp" in judged.to_dict()["inconclusive"]
    no_inp = {"landing": (_page(rng, inp=False), _page(rng, inp=False))}
    assert "landing:inp" not in {m.name for m in judge(healthy(rng), None, no_inp).metrics}
    failing = {"landing": (_page(rng), _page(rng, n=2, errors=8))}
    judged = judge(healthy(rng), Criteria(seed=1), failing)
    assert "pages:errors" in [m.name for m in judged.regressions]


def test_baseline_with_several_targets_is_a_usage_error(pytester, health_server):
    targets = "".join(
        f'[targets.{name}]\nplatform = "render"\nurl = "{health_server}"\nservice_id = "s"\n'
        for name in ("alpha", "beta")
    )
    pytester.makefile(".toml", targets=targets)
    folder = pytester.path / "suites" / "performance"
    folder.mkdir(parents=True)
    (folder / "test_x.py").write_text("def test_x(target):\n    pass\n")
    result = pytester.runpytest_subprocess(
        "suites", "--target", "alpha,beta", "--baseline", "https://stable.example"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--baseline names the stable release of one target, but --target alpha,beta selects 2*"]
    )
    assert "0 passed" not in result.stdout.str()


def test_the_history_stays_bounded_to_the_newest_runs(tmp_path):
    rng = np.random.default_rng(10)
    store = History(tmp_path)
    for n in range(6):
        store.record("local", "quick", f"r{n}", {"health": arm(rng, 60)}, "passed", keep=4)
        if n == 1:
            store.invalidate("r1", "incident 7")
    assert [r.run_id for r in store.runs("local", "quick")] == ["r5", "r4", "r3", "r2"]
    assert sorted(p.name for p in (tmp_path / "local" / "quick").iterdir()) == [
        f"r{n}.json.gz" for n in range(2, 6)
    ]  # r1's invalidation marker went with it
    store.record("local", "smoke", "s0", {"health": arm(rng, 60)}, "passed", keep=1)
    assert len(store.runs("local")) == 5  # each target and profile is pruned on its own
    with pytest.raises(HistoryError, match="at least 1 run"):
        store.prune("local", "quick", 0)


def test_tied_page_values_are_refined_by_permutation():
    """LCP comes in 4 ms steps and CLS is often 0: with ties the normal approximation of a
    10-against-10 rank test overstates the p-value (8e-5 when every canary load is worse);
    the permutation test gives the exact order (5e-6, here within its 1e-5 resolution)."""
    lcp = (232.0, 228.0, 232.0, 240.0, 236.0, 224.0, 232.0, 244.0, 220.0, 236.0)
    base = PageSamples({Kind.LCP: lcp, Kind.CLS: (0.0,) * 10}, 10, 0)
    canary = PageSamples({Kind.LCP: tuple(x * 3 for x in lcp), Kind.CLS: (0.126,) * 10}, 10, 0)
    judged = judge({}, Criteria(seed=3), {"dashboard": (base, canary)})
    p = {m.name: m.p_value for m in judged.metrics}
    assert p["dashboard:lcp"] < 3e-5
    assert p["dashboard:cls"] < 3e-5
    assert {m.name for m in judged.regressions} == {"dashboard:lcp", "dashboard:cls"}
