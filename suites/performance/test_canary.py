"""Performance - Canary: the release is not slower, nor more error-prone, than the stable one.

Absolute SLOs pass a release that is 40 % slower but still quick. These checks judge the
release *against* a reference, statistically (``postdeploy.performance.judge``; docs/canary.md):

* against a baseline arm (``--baseline URL``, the target's ``baseline_url``, or the instance
  settings of ``[canary]``): the same requests to both arms, interleaved, and N loads of each
  key page per arm in Chromium (LCP, CLS, TTFB, INP), judged together;
* against the last K usable runs of the history (``--compare-with previous:K``). Every run
  stores its samples there (``[canary] record_history``, on by default): the canary arm's
  samples of the baseline check when it ran, else the target's own; the history is pruned to
  ``history_keep`` runs per target and load profile.

A regression is significant after Holm's correction at the target's run false-alarm rate
*and* larger than the allowed increase. Both checks measure the target, so they run ``alone``
(no background work of the run meanwhile: it would load one arm and not the other). The
baseline check gates, and the history check when it judges (``--compare-with``), as long as
``[canary] gating`` says so. Trouble with the baseline or the history, or
too few samples, is broken, never failed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import allure
import pytest

from postdeploy.gate import PROP_CANARY, BackendError
from postdeploy.performance import history
from postdeploy.performance.canary import (
    AUTO,
    CANARY,
    Arm,
    BaselineUnavailable,
    NoBaseline,
    TrafficThrottled,
    arms_for,
    collect,
    conclude,
    criteria_for,
    paired,
    plan_for,
)
from postdeploy.performance.canary_pages import collect_pages, page_plan, paired_pages
from postdeploy.performance.judge import (
    ArmSamples,
    Judgement,
    PageSamples,
    Result,
    judge,
    pool,
    run_to_run_drift,
)
from postdeploy.performance.plot import distributions_svg

#: Per target, the canary arm's samples of this run's baseline check and what the check made of
#: them: the history check stores those rather than send the same traffic again.
CANARY_SAMPLES = pytest.StashKey[dict[str, tuple[dict[str, ArmSamples], str]]]()


@pytest.fixture
def canary_gating(request: pytest.FixtureRequest, target) -> None:
    """The checks are marked gating; ``[canary] gating = false`` takes them out of the gate."""
    if not target.canary.gating:
        node = request.node
        node.own_markers[:] = [m for m in node.own_markers if m.name != "gating"]


def _history(config: pytest.Config) -> history.History:
    option = config.getoption("postdeploy_history_dir")
    return history.History(Path(option) if option else None)


def _profile(config: pytest.Config, target) -> str:
    return str(config.getoption("postdeploy_load_profile") or target.load.profile)


def _report(
    request: pytest.FixtureRequest,
    judgement: Judgement,
    against: str,
    pairs: dict[str, tuple[ArmSamples, ArmSamples]],
) -> None:
    allure.attach(
        judgement.table(),
        name=f"canary judgement against {against}",
        attachment_type=allure.attachment_type.TEXT,
    )
    for endpoint in dict.fromkeys(m.endpoint for m in judgement.regressions):
        if endpoint in pairs:  # the pooled error rate has no distribution of its own
            allure.attach(
                distributions_svg(f"{endpoint}: baseline vs canary", *pairs[endpoint]),
                name=f"{endpoint}: the two arms' latencies",
                attachment_type=allure.attachment_type.SVG,
            )
    request.node.user_properties.append((PROP_CANARY, {"against": against, **judgement.to_dict()}))


def _arms(request: pytest.FixtureRequest, target) -> tuple[Arm, Arm]:
    """The two arms; the platform's instances are listed only when the target asks for
    instance arms (``baseline_instance = "auto"``) and no ``--baseline`` overrides them."""
    url = request.config.getoption("postdeploy_baseline")
    auto = target.canary.baseline_instance == AUTO and not url
    instances = request.getfixturevalue("instances") if auto else []
    expected = request.getfixturevalue("expected_version") if auto else None
    try:
        return arms_for(target, url, instances, expected)
    except NoBaseline as exc:
        pytest.skip(str(exc))


def _pages(
    request: pytest.FixtureRequest, target, arms: tuple[Arm, Arm], run_id: str
) -> tuple[dict[str, tuple[PageSamples, PageSamples]], Exception | None]:
    """The page metrics of both arms, or why they could not be measured (the browser, the
    baseline's pages, a rate limit: the harness's or the baseline's trouble, never the
    target's verdict)."""
    plan = page_plan(target)
    if plan is None:
        return {}, None
    try:
        playwright = request.getfixturevalue("playwright_driver")
        return paired_pages(collect_pages(playwright, target, arms, plan, run_id)), None
    except (BackendError, BaselineUnavailable, TrafficThrottled) as exc:
        return {}, exc


@pytest.mark.gating
@pytest.mark.alone
def test_the_release_is_not_worse_than_its_baseline(request, target, run_id, canary_gating):
    arms = _arms(request, target)
    pairs = paired(collect(target, arms, plan_for(target), run_id))
    pages, unmeasured = _pages(request, target, arms, run_id)
    judgement = judge(pairs, criteria_for(target), pages)
    failed = judgement.result is Result.FAIL
    request.config.stash.setdefault(CANARY_SAMPLES, {})[target.name] = (
        {name: canary for name, (_, canary) in pairs.items()},
        history.FAILED if failed else history.NOT_JUDGED,
    )
    against = arms[0].describe()
    _report(request, judgement, against, pairs)
    conclude(judgement, against, unmeasured)


@pytest.mark.alone  # gating with --compare-with (conftest.py): only then can it fail
def test_the_release_is_not_worse_than_earlier_runs(request, target, run_id, canary_gating):
    config = request.config
    k = config.getoption("postdeploy_compare_with")
    record = bool(target.canary.record_history or config.getoption("postdeploy_history_dir"))
    if k is None and not record:
        pytest.skip("not judged: no --compare-with previous[:K] and no run history kept")
    store = _history(config)
    profile = _profile(config, target)
    reused = config.stash.get(CANARY_SAMPLES, {}).get(target.name)
    if reused is not None:
        current, prior = reused
    else:
        # [canary] history_samples, whether stored only or judged: the runs a judgement pools
        # must have the same shape (History.baseline)
        n = int(target.canary.history_samples)
        samples = collect(target, [Arm(CANARY, target.url)], plan_for(target, samples=n), run_id)
        current, prior = {name: arms[0] for name, arms in samples.items()}, history.NOT_JUDGED
    outcome = prior
    keep = max(int(target.canary.history_keep), k or 0)
    try:
        if k is None:
            pytest.skip(
                f"not judged: this run's samples were stored in {store.root} for later runs; "
                "pass --compare-with previous[:K] to judge against earlier runs"
            )
        size = max((arm.requests for arm in current.values()), default=0)
        earlier = store.baseline(target.name, profile, k, exclude_run=run_id, per_endpoint=size)
        if len(earlier) < k:
            pytest.skip(
                f"not judged: {len(earlier)} usable earlier run(s) of {target.name} with profile "
                f"{profile!r}, harness {history.harness_version()} and {size} samples per "
                f"endpoint, sent {history.SAMPLING}, in {store.root}; --compare-with asks "
                f"for {k}"
            )
        stored = [run.samples() for run in earlier]
        reference = pool(stored)
        pairs = {name: (reference[name], current[name]) for name in current if name in reference}
        criteria = criteria_for(target, relative=True)
        drift = run_to_run_drift(stored, criteria)
        judgement = judge(pairs, replace(criteria, drift=drift))
        against = f"the last {k} run(s) ({', '.join(run.run_id for run in earlier)})"
        if drift:
            against += ", beyond how much they differ among themselves"
        _report(request, judgement, against, pairs)
        judged = {
            Result.FAIL: history.FAILED,
            Result.INCONCLUSIVE: history.INCONCLUSIVE,
        }.get(judgement.result, history.PASSED)
        outcome = history.FAILED if prior == history.FAILED else judged
        conclude(judgement, against)
    finally:
        store.record(target.name, profile, run_id, current, outcome, keep=keep)
