"""The canary judge: is the canary arm worse than the baseline arm, beyond what is allowed?

Pure statistics on recorded samples (no I/O), so the same judge serves a live canary against
its baseline, a run against earlier runs (``history``) and the benchmark's recorded samples.

Per key endpoint four metrics, plus the error rate over all endpoints:

* ``latency`` - the typical response time: a one-sided Mann-Whitney U test (canary slower)
  and the Hodges-Lehmann shift of the log latencies with its distribution-free confidence
  interval (Moses), reported as a relative increase (``exp(shift) - 1``).
* ``p95`` and ``p99`` - the tail, so a few huge outliers a rank test shrugs off are seen:
  the relative increase of each percentile with a percentile-bootstrap interval
  (``scipy.stats.bootstrap``); its one-sided p-value is the bootstrap share of resamples
  with no increase. A first 499 resamples settle clear cases; only a p-value that could
  matter after the correction is refined with the full count (sequential Monte Carlo).
* ``errors`` - the error rate by Fisher's exact test (one-sided), so errors on a zero-error
  baseline are a regression. Boschloo's test is more powerful but its cost grows with the
  sample size (over a minute for 2,200 requests per arm on this machine); Fisher's is exact
  and instant.

A metric is a *regression* only when its corrected p-value is below the run's false-alarm
rate **and** its effect is larger than the allowed increase (default +10 % latency, +0.1
percentage point errors) - and, for latencies, at least ``min_increase_ms`` (1 ms) slower.
The p-values of all judged metrics of a run are corrected together
with Holm's step-down method: it controls the family-wise error rate (the chance that a run
raises *any* false alarm) at the stated rate under any dependence between the metrics, which
is the promise "a healthy release fails at most 1 % of runs". Benjamini-Hochberg
(``scipy.stats.false_discovery_control``) controls the false discovery rate instead, which
equals the family-wise rate only when no metric regressed; scipy has no Holm, so it is the
few lines of :func:`holm` below.

Page metrics (``judge(..., pages=...)``): per key page, from N page loads per arm in Chromium,
``lcp``, ``ttfb`` and ``inp`` are judged like ``latency`` (Mann-Whitney U, Hodges-Lehmann
shift of the logs, relative effect; no tails - N is small), ``cls`` (unitless, usually 0) by
the same rank test with the shift of the raw values as an absolute effect, and the loads that
failed by Fisher's test (``pages:errors``). They join the same Holm family, so the run's
false-alarm rate still holds over every metric. With few loads the rank test is exact (by
permutation where values tie) - N = 10 per arm can reach p = 5e-6, enough for a clear
regression after the correction.

An arm with fewer than ``min_samples`` samples of a metric (``min_page_samples`` loads of a
page metric) leaves it *inconclusive*: never passed. A Kayenta-style score (0-100: the
weighted share of judged metrics that passed) is reported with its pass and marginal
thresholds.
"""

from __future__ import annotations

import fnmatch
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy and scipy are imported where they are used, not here: every run that collects the canary
# checks imports this module, judging or not, and scipy takes most of a second to import (numpy
# a tenth of one).

#: Run false-alarm rate (family-wise) when the target does not state one.
DEFAULT_ALPHA = 0.01
DEFAULT_LATENCY_INCREASE = 0.10
DEFAULT_ERROR_INCREASE_PP = 0.1
DEFAULT_MIN_SAMPLES = 50
#: Smallest latency increase that counts, in ms: sub-millisecond shifts on a ~2 ms endpoint
#: are scheduler noise between two processes, not a release getting slower.
DEFAULT_MIN_INCREASE_MS = 1.0
DEFAULT_PASS_SCORE = 95.0
DEFAULT_MARGINAL_SCORE = 75.0
#: Bootstrap resamples for a tail p-value that may matter after the correction.
DEFAULT_RESAMPLES = 4999
#: Resamples of the first, screening pass; p-values above SCREEN_P are final after it.
SCREEN_RESAMPLES = 499
SCREEN_P = 0.03
#: Level of the reported effect intervals (two-sided).
INTERVAL_LEVEL = 0.95
TAILS = {"p95": 0.95, "p99": 0.99}
#: Latency floor for the log transform, in ms (a clock tick, never a real answer time).
MIN_LATENCY_MS = 1e-3
#: The baseline figure a relative latency effect is taken of, per metric kind.
_REFERENCE = {
    "latency": "median_ms", "p95": "p95_ms", "p99": "p99_ms",
    "lcp": "median_ms", "ttfb": "median_ms", "inp": "median_ms",
}  # fmt: skip
#: The metric that pools the errors of every endpoint.
ALL_ENDPOINTS = "all"
PERCENT = 100.0
#: Metrics named in a one-line reason; the rest are counted.
MAX_NAMED = 6


class Kind(StrEnum):
    LATENCY = "latency"
    P95 = "p95"
    P99 = "p99"
    ERRORS = "errors"
    # page metrics (Core Web Vitals and the time to first byte of the page)
    LCP = "lcp"
    CLS = "cls"
    TTFB = "ttfb"
    INP = "inp"


#: The page metrics, in the order they are reported.
PAGE_KINDS = (Kind.LCP, Kind.CLS, Kind.TTFB, Kind.INP)
#: Page metrics whose effect is a difference of raw values (CLS has no unit), not relative.
ADDITIVE = frozenset({Kind.CLS})
#: The metric that pools the failed page loads of every page.
ALL_PAGES = "pages"
#: CLS increase tolerated (absolute): half the "good" threshold of 0.1.
DEFAULT_CLS_INCREASE = 0.05
#: Page loads per arm below which a page metric is inconclusive.
DEFAULT_MIN_PAGE_SAMPLES = 8
#: Largest arm for which the rank test is computed exactly (when there are no ties).
EXACT_MAX_SAMPLES = 50
#: With ties (LCP and INP come in 4-8 ms steps, CLS is often 0) a small arm's rank test is
#: refined by permutation (tie-aware) when the normal approximation's p-value is under this.
PERMUTATION_SCREEN_P = 0.05
#: Permutations of that refinement (resolution 1e-5, under 1 % / 60 metrics).
PERMUTATIONS = 99_999


class Classification(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    REGRESSION = "regression"
    INCONCLUSIVE = "inconclusive"


class Result(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    MARGINAL = "marginal"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class ArmSamples:
    """What one arm answered on one endpoint: latencies of the expected answers, and errors."""

    latencies_ms: tuple[float, ...]
    requests: int
    errors: int

    @classmethod
    def of(cls, latencies_ms: Iterable[float], errors: int = 0) -> ArmSamples:
        values = tuple(float(x) for x in latencies_ms)
        return cls(values, len(values) + errors, errors)

    def merged(self, other: ArmSamples) -> ArmSamples:
        return ArmSamples(
            self.latencies_ms + other.latencies_ms,
            self.requests + other.requests,
            self.errors + other.errors,
        )

    def summary(self) -> dict[str, Any]:
        import numpy as np

        values = np.asarray(self.latencies_ms)
        has = values.size > 0
        return {
            "samples": int(values.size),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else None,
            "median_ms": _round(float(np.median(values))) if has else None,
            "p95_ms": _round(float(np.quantile(values, TAILS["p95"]))) if has else None,
            "p99_ms": _round(float(np.quantile(values, TAILS["p99"]))) if has else None,
        }


@dataclass(frozen=True)
class PageSamples:
    """What one arm's loads of one page gave: each page metric's values over the loads that
    measured it (ms; CLS unitless), how many loads were made and how many failed."""

    values: Mapping[str, tuple[float, ...]]
    loads: int
    errors: int

    def of(self, kind: Kind) -> ArmSamples:
        values = tuple(self.values.get(kind, ()))
        return ArmSamples(values, len(values), 0)

    def load_errors(self) -> ArmSamples:
        return ArmSamples((), self.loads, self.errors)


#: endpoint -> (baseline, canary)
Pairs = Mapping[str, tuple[ArmSamples, ArmSamples]]
#: page -> (baseline, canary)
PagePairs = Mapping[str, tuple[PageSamples, PageSamples]]


@dataclass(frozen=True)
class Criteria:
    """What counts as a regression, and how sure the judge must be (from ``[canary]``)."""

    alpha: float = DEFAULT_ALPHA
    #: allowed increase per metric kind: relative for latencies, percentage points for errors
    allowed: Mapping[str, float] = field(
        default_factory=lambda: {
            Kind.LATENCY: DEFAULT_LATENCY_INCREASE,
            Kind.P95: DEFAULT_LATENCY_INCREASE,
            Kind.P99: DEFAULT_LATENCY_INCREASE,
            Kind.ERRORS: DEFAULT_ERROR_INCREASE_PP,
            Kind.LCP: DEFAULT_LATENCY_INCREASE,
            Kind.TTFB: DEFAULT_LATENCY_INCREASE,
            Kind.INP: DEFAULT_LATENCY_INCREASE,
            Kind.CLS: DEFAULT_CLS_INCREASE,
        }
    )
    min_samples: int = DEFAULT_MIN_SAMPLES
    #: page loads per arm a page metric needs
    min_page_samples: int = DEFAULT_MIN_PAGE_SAMPLES
    #: a latency regression must also be at least this much slower in absolute terms
    min_increase_ms: float = DEFAULT_MIN_INCREASE_MS
    #: fnmatch patterns of metric names (``lessons:latency``, ``*:errors``) a regression of
    #: which fails the verdict whatever the score
    critical: tuple[str, ...] = ("*",)
    pass_score: float = DEFAULT_PASS_SCORE
    marginal_score: float = DEFAULT_MARGINAL_SCORE
    #: metric kind -> weight in the score (missing kinds weigh 1)
    weights: Mapping[str, float] = field(default_factory=dict)
    resamples: int = DEFAULT_RESAMPLES
    seed: int | None = None
    #: metric name -> how much the reference's own runs already differ among themselves,
    #: added to the allowed increase (a comparison with stored runs: :func:`run_to_run_drift`)
    drift: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"the run false-alarm rate must be between 0 and 1, got {self.alpha}")
        if not 0 <= self.marginal_score <= self.pass_score <= PERCENT:
            raise ValueError(
                "score thresholds must satisfy 0 <= marginal <= pass <= 100, got "
                f"marginal {self.marginal_score} and pass {self.pass_score}"
            )
        if min(self.min_samples, self.min_page_samples) < 2:
            raise ValueError(
                "min_samples and min_page_samples must be at least 2, got "
                f"{self.min_samples} and {self.min_page_samples}"
            )

    def is_critical(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.critical)

    def threshold(self, kind: Kind, name: str = "") -> float:
        """The allowed increase of metric ``name`` of ``kind``, with its run-to-run drift."""
        return float(self.allowed.get(kind, 0.0)) + float(self.drift.get(name, 0.0))


@dataclass
class Metric:
    """One judged metric: both arms' figures, the effect with its interval, the verdict."""

    endpoint: str
    kind: Kind
    baseline: dict[str, Any]
    canary: dict[str, Any]
    #: relative increase (0.2 = 20 % slower) or, for errors, percentage points
    effect: float | None = None
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    adjusted_p: float | None = None
    threshold: float = 0.0
    classification: Classification = Classification.INCONCLUSIVE
    critical: bool = False
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.endpoint}:{self.kind}"

    @property
    def unit(self) -> str:
        if self.kind in ADDITIVE:
            return "absolute"
        return "pp" if self.kind is Kind.ERRORS else "relative"

    def effect_text(self) -> str:
        if self.effect is None:
            return "no effect estimated"
        low, high = self.interval or (math.nan, math.nan)
        if self.kind in ADDITIVE:
            return f"{self.effect:+.3f} [{low:+.3f}, {high:+.3f}] (allowed +{self.threshold:.3f})"
        if self.kind is Kind.ERRORS:
            return (
                f"{self.effect:+.2f} pp [{low:+.2f}, {high:+.2f}] "
                f"(allowed +{self.threshold:.2f} pp)"
            )
        return f"{self.effect:+.1%} [{low:+.1%}, {high:+.1%}] (allowed +{self.threshold:.0%})"

    def arms_text(self) -> str:
        if self.kind is Kind.ERRORS:
            return (
                f"errors {self.baseline['errors']}/{self.baseline['requests']} -> "
                f"{self.canary['errors']}/{self.canary['requests']}"
            )
        key = _REFERENCE.get(self.kind, "median_ms")
        label = str(self.kind) if self.kind in (Kind.P95, Kind.P99) else "median"
        show = _unitless if self.kind in ADDITIVE else _ms
        return (
            f"{label} {show(self.baseline[key])} -> {show(self.canary[key])} "
            f"(n {self.baseline['samples']}/{self.canary['samples']})"
        )

    def line(self) -> str:
        """One line for the terminal summary and the failure message."""
        p = "n/a" if self.adjusted_p is None else f"{self.adjusted_p:.2g}"
        text = f"{self.name}: {self.arms_text()}, {self.effect_text()}, adjusted p {p}"
        return f"{text} - {self.note}" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.name,
            "endpoint": self.endpoint,
            "kind": str(self.kind),
            "baseline": self.baseline,
            "canary": self.canary,
            "effect": _round(self.effect),
            "effect_unit": self.unit,
            "interval": [_round(x) for x in self.interval] if self.interval else None,
            "interval_level": INTERVAL_LEVEL,
            "p_value": _round(self.p_value, 6),
            "adjusted_p": _round(self.adjusted_p, 6),
            "threshold": self.threshold,
            "classification": str(self.classification),
            "critical": self.critical,
            "note": self.note,
            "summary": self.line(),
        }


@dataclass
class Judgement:
    """The verdict over all metrics of one comparison."""

    metrics: list[Metric]
    criteria: Criteria
    score: float | None
    result: Result
    reason: str

    @property
    def regressions(self) -> list[Metric]:
        return [m for m in self.metrics if m.classification is Classification.REGRESSION]

    @property
    def inconclusive(self) -> list[Metric]:
        return [m for m in self.metrics if m.classification is Classification.INCONCLUSIVE]

    def lines(self) -> list[str]:
        """The regressions, one line each (what the terminal summary shows)."""
        return [m.line() for m in self.regressions]

    def table(self) -> str:
        """Every metric, one line each (the report attachment)."""
        head = (
            f"canary judge: {self.result} - {self.reason}; score "
            f"{_score_text(self.score)} (pass >= {self.criteria.pass_score:g}, marginal >= "
            f"{self.criteria.marginal_score:g}); run false-alarm rate {self.criteria.alpha:g} "
            "(Holm)"
        )
        rows = [f"[{m.classification}] {m.line()}" for m in self.metrics]
        return "\n".join([head, "", *rows])

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": str(self.result),
            "reason": self.reason,
            "score": _round(self.score, 2),
            "pass_score": self.criteria.pass_score,
            "marginal_score": self.criteria.marginal_score,
            "false_alarm_rate": self.criteria.alpha,
            "correction": "holm",
            "min_samples": self.criteria.min_samples,
            "min_latency_increase_ms": self.criteria.min_increase_ms,
            "min_page_samples": self.criteria.min_page_samples,
            "regressions": [m.name for m in self.regressions],
            "inconclusive": [m.name for m in self.inconclusive],
            "metrics": [m.to_dict() for m in self.metrics],
        }


# -- the tests -----------------------------------------------------------------------------


def hodges_lehmann(
    baseline: np.ndarray, canary: np.ndarray, level: float = INTERVAL_LEVEL
) -> tuple[float, tuple[float, float]]:
    """Shift of ``canary`` over ``baseline`` (median of pairwise differences) and its
    distribution-free interval (Moses: order statistics of the differences at the Mann-Whitney
    critical value, normal approximation). scipy has the test but not the estimator."""
    import numpy as np
    from scipy import stats

    diffs = np.subtract.outer(canary, baseline).ravel()
    n, m = baseline.size, canary.size
    z = stats.norm.ppf(1 - (1 - level) / 2)
    k = math.floor(n * m / 2 - z * math.sqrt(n * m * (n + m + 1) / 12))
    k = min(max(k, 0), diffs.size - 1)
    # Order statistics by partial sorting: linear time for the N x N differences.
    middle = diffs.size // 2
    ranks = sorted({k, diffs.size - 1 - k, middle, max(middle - 1, 0)})
    ordered = np.partition(diffs, ranks)
    median = (
        float(ordered[middle])
        if diffs.size % 2
        else float((ordered[middle - 1] + ordered[middle]) / 2)
    )
    return median, (float(ordered[k]), float(ordered[diffs.size - 1 - k]))


def _latency(base: np.ndarray, canary: np.ndarray) -> tuple[float, tuple[float, float], float]:
    """Relative increase of the typical latency, its interval, and the one-sided p-value."""
    import numpy as np
    from scipy import stats

    p = float(stats.mannwhitneyu(canary, base, alternative="greater").pvalue)
    shift, (low, high) = hodges_lehmann(
        np.log(np.maximum(base, MIN_LATENCY_MS)), np.log(np.maximum(canary, MIN_LATENCY_MS))
    )
    return math.expm1(shift), (math.expm1(low), math.expm1(high)), p


def _tail_statistic(base: np.ndarray, canary: np.ndarray, axis: int = -1) -> np.ndarray:
    import numpy as np

    quantiles = list(TAILS.values())
    ratio = np.quantile(canary, quantiles, axis=axis) / np.maximum(
        np.quantile(base, quantiles, axis=axis), MIN_LATENCY_MS
    )
    return np.asarray(ratio - 1)


def _tails(
    base: np.ndarray, canary: np.ndarray, resamples: int, rng: np.random.Generator, alpha: float
) -> dict[str, tuple[float, tuple[float, float], float]]:
    """Per tail: the relative increase, its bootstrap interval and one-sided p-value."""
    import numpy as np
    from scipy import stats

    observed = _tail_statistic(base, canary)
    count = SCREEN_RESAMPLES
    while True:
        boot = stats.bootstrap(
            (base, canary),
            _tail_statistic,
            n_resamples=count,
            vectorized=True,
            method="percentile",
            confidence_level=INTERVAL_LEVEL,
            rng=rng,
        )
        dist = np.asarray(boot.bootstrap_distribution)  # (tails, resamples)
        p_values = (1 + np.sum(dist <= 0, axis=-1)) / (count + 1)
        # A screening p-value above SCREEN_P cannot fall under alpha after the correction.
        if count >= resamples or p_values.min() > max(SCREEN_P, alpha):
            break
        count = resamples
    low, high = boot.confidence_interval
    return {
        name: (float(observed[i]), (float(low[i]), float(high[i])), float(p_values[i]))
        for i, name in enumerate(TAILS)
    }


def _wilson(errors: int, requests: int) -> tuple[float, float]:
    from scipy import stats

    ci = stats.binomtest(errors, requests).proportion_ci(INTERVAL_LEVEL, method="wilson")
    return float(ci.low), float(ci.high)


def _errors(base: ArmSamples, canary: ArmSamples) -> tuple[float, tuple[float, float], float]:
    """Error-rate increase in percentage points, its Newcombe interval, Fisher's p-value."""
    from scipy import stats

    table = [
        [canary.errors, canary.requests - canary.errors],
        [base.errors, base.requests - base.errors],
    ]
    p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    p1, p2 = canary.errors / canary.requests, base.errors / base.requests
    (l1, u1), (l2, u2) = (
        _wilson(canary.errors, canary.requests),
        _wilson(base.errors, base.requests),
    )
    # Newcombe's hybrid score interval for a difference of two proportions (method 10).
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff * PERCENT, (low * PERCENT, high * PERCENT), p


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# -- the judge -----------------------------------------------------------------------------


def judge(
    pairs: Pairs, criteria: Criteria | None = None, pages: PagePairs | None = None
) -> Judgement:
    """Judge every metric of every endpoint (and page), correct the p-values together,
    classify and score."""
    import numpy as np

    criteria = criteria or Criteria()
    rng = np.random.default_rng(criteria.seed)
    metrics: list[Metric] = []
    pooled_base = ArmSamples((), 0, 0)
    pooled_canary = ArmSamples((), 0, 0)
    for endpoint, (base, canary) in pairs.items():
        metrics += _endpoint_metrics(endpoint, base, canary, criteria, rng)
        pooled_base, pooled_canary = pooled_base.merged(base), pooled_canary.merged(canary)
    if len(pairs) > 1:
        metrics.append(_error_metric(ALL_ENDPOINTS, pooled_base, pooled_canary, criteria))
    if pages:
        metrics += _page_metrics(pages, criteria, rng)
    tested = [(m, m.p_value) for m in metrics if m.p_value is not None]
    adjusted_all = holm([p for _, p in tested])
    for (metric, _), adjusted in zip(tested, adjusted_all, strict=True):
        metric.adjusted_p = adjusted
        significant = adjusted < criteria.alpha
        large = _large(metric, criteria)
        metric.classification = (
            Classification.REGRESSION if significant and large else Classification.PASS
        )
    for metric in metrics:
        drift = float(criteria.drift.get(metric.name, 0.0))
        if drift > 0 and not metric.note:
            amount = f"{drift:.2f} pp" if metric.kind is Kind.ERRORS else f"{drift:.1%}"
            metric.note = f"the allowed increase includes +{amount} of run-to-run drift"
    return _verdict(metrics, criteria)


def run_to_run_drift(
    runs: Sequence[Mapping[str, ArmSamples]], criteria: Criteria
) -> dict[str, float]:
    """How much a new run may differ from the stored ``runs`` by the host alone, per metric:
    the larger of two measures (nothing for fewer than two runs).

    * The metric's own drift: the largest low end of the interval of the increase any one run
      shows over the others pooled - what sampling noise cannot explain.
    * The control limit of whole runs, per latency kind (:func:`control_limits`): a host's load
      moves every endpoint of a run together, and K runs that happen to agree on one endpoint
      still say how far apart whole runs fall.

    A run's samples share its moment: runs minutes apart on a shared host differ by more than
    the spread within any one run says, so a sample-level test finds that difference
    significant. A comparison with stored runs adds this drift to the allowed increase: a run
    is a regression only when it is worse than the earlier runs by the allowed increase beyond
    what they already differ by. (A live baseline, sampled interleaved, needs none.)
    """
    drift: dict[str, float] = {}
    if len(runs) < 2:
        return drift
    plain = replace(criteria, drift={})
    for index, run in enumerate(runs):
        others = pool([other for i, other in enumerate(runs) if i != index])
        pairs = {name: (others[name], run[name]) for name in sorted(others.keys() & run.keys())}
        for metric in judge(pairs, plain).metrics:
            # the low end of the interval: what sampling noise cannot explain (which the test
            # of the new run accounts for already)
            low = metric.interval[0] if metric.interval else 0.0
            if low > 0:
                drift[metric.name] = max(drift.get(metric.name, 0.0), low)
    limits = control_limits(runs, criteria.min_samples)
    for endpoint in set.intersection(*(set(run) for run in runs)):
        for kind, limit in limits.items():
            name = f"{endpoint}:{kind}"
            drift[name] = max(drift.get(name, 0.0), limit)
    return {name: value for name, value in drift.items() if value > 0}


#: The statistic of each latency kind whose level :func:`control_limits` follows from run to run.
LEVELS = {Kind.LATENCY: 0.5, Kind.P95: TAILS["p95"], Kind.P99: TAILS["p99"]}
#: Control limits at this many standard deviations of a run's level (Shewhart's 3 sigma).
CONTROL_SIGMAS = 3.0


def control_limits(runs: Sequence[Mapping[str, ArmSamples]], min_samples: int) -> dict[Kind, float]:
    """Per latency kind, how much slower than the mean of ``runs`` a run of the same release
    may be by the host alone: a Shewhart control limit on the runs' levels.

    A run's level of a kind is the geometric mean over its endpoints of that statistic
    (median, p95, p99). Averaging over the endpoints leaves out the sampling noise of any
    one endpoint and keeps what moves them all: measured on this 2-core host, runs of the
    healthy release seconds apart differ by 6 % (median) and 12 % (p95) from run to run, and
    97-98 % of that variance is common to every endpoint once the samples go round-robin
    (docs/canary.md). The levels' standard deviation is estimated from their range (highest
    minus lowest, divided by the expected range of as many normal draws: d2, the control-chart
    constant), and the limit is ``CONTROL_SIGMAS`` of it for a new run against the mean of
    ``len(runs)``: 2.05 x the range for three runs. The result is relative (0.2: 20 %).

    Endpoints with fewer than ``min_samples`` latencies in some run are left out.
    """
    if len(runs) < 2:
        return {}
    names = [
        name
        for name in sorted(set.intersection(*(set(run) for run in runs)))
        if all(len(run[name].latencies_ms) >= min_samples for run in runs)
    ]
    if not names:
        return {}
    k = len(runs)
    scale = CONTROL_SIGMAS * math.sqrt(1 + 1 / k) / expected_range(k)
    limits = {}
    for kind, quantile in LEVELS.items():
        levels = [run_level(run, names, quantile) for run in runs]
        limits[kind] = math.expm1(scale * (max(levels) - min(levels)))
    return limits


@functools.cache
def expected_range(n: int) -> float:
    """d2: the expected range of ``n`` standard normal draws (1.128 for 2, 1.693 for 3)."""
    import numpy as np
    from scipy import integrate, stats

    def integrand(x: float) -> float:
        below = float(stats.norm.cdf(x))
        return 1 - below**n - (1 - below) ** n

    value, _ = integrate.quad(integrand, -np.inf, np.inf)
    return float(value)


def run_level(run: Mapping[str, ArmSamples], names: Sequence[str], quantile: float) -> float:
    """The geometric mean over ``names`` of one run's ``quantile`` latency (log ms)."""
    import numpy as np

    logs = [
        math.log(max(float(np.quantile(run[name].latencies_ms, quantile)), MIN_LATENCY_MS))
        for name in names
    ]
    return float(np.mean(logs))


def pool(runs: Sequence[Mapping[str, ArmSamples]]) -> dict[str, ArmSamples]:
    """Several runs' samples pooled per endpoint, in run order (the endpoints every run has)."""
    common = set.intersection(*(set(run) for run in runs)) if runs else set()
    pooled: dict[str, ArmSamples] = {}
    for name in sorted(common):
        pooled[name] = ArmSamples((), 0, 0)
        for run in runs:
            pooled[name] = pooled[name].merged(run[name])
    return pooled


def _large(metric: Metric, criteria: Criteria) -> bool:
    """The effect is over the allowed increase (and, for latencies, over the ms floor)."""
    if metric.effect is None or metric.effect <= metric.threshold:
        return False
    if metric.kind is Kind.ERRORS or metric.kind in ADDITIVE:
        return True
    increase_ms = metric.effect * float(metric.baseline[_REFERENCE[metric.kind]] or 0.0)
    if increase_ms < criteria.min_increase_ms:
        metric.note = f"under the {criteria.min_increase_ms:g} ms floor: +{increase_ms:.2f} ms"
        return False
    return True


def _arm(samples: ArmSamples) -> dict[str, Any]:
    return samples.summary()


def _endpoint_metrics(
    endpoint: str,
    base: ArmSamples,
    canary: ArmSamples,
    criteria: Criteria,
    rng: np.random.Generator,
) -> list[Metric]:
    import numpy as np

    base_summary, canary_summary = _arm(base), _arm(canary)
    latency_kinds = (Kind.LATENCY, Kind.P95, Kind.P99)
    metrics = {
        kind: Metric(
            endpoint,
            kind,
            base_summary,
            canary_summary,
            threshold=criteria.threshold(kind, f"{endpoint}:{kind}"),
            critical=criteria.is_critical(f"{endpoint}:{kind}"),
        )
        for kind in latency_kinds
    }
    few = min(len(base.latencies_ms), len(canary.latencies_ms))
    if few < criteria.min_samples:
        for metric in metrics.values():
            metric.note = (
                f"no data: {few} samples in an arm, at least {criteria.min_samples} needed"
            )
    else:
        b, c = np.asarray(base.latencies_ms), np.asarray(canary.latencies_ms)
        effect, interval, p = _latency(b, c)
        metrics[Kind.LATENCY].effect, metrics[Kind.LATENCY].interval = effect, interval
        metrics[Kind.LATENCY].p_value = p
        for name, (t_effect, t_interval, t_p) in _tails(
            b, c, criteria.resamples, rng, criteria.alpha
        ).items():
            metric = metrics[Kind(name)]
            metric.effect, metric.interval, metric.p_value = t_effect, t_interval, t_p
    return [*metrics.values(), _error_metric(endpoint, base, canary, criteria)]


def _page_metrics(pages: PagePairs, criteria: Criteria, rng: np.random.Generator) -> list[Metric]:
    """Each page's metrics, then the failed loads of all pages pooled. A metric the baseline
    could not measure at all (INP of a page whose click is not reported) is left out: the
    page has no such figure to compare; one the canary alone lacks is inconclusive."""
    metrics = []
    loads_base = ArmSamples((), 0, 0)
    loads_canary = ArmSamples((), 0, 0)
    for page, (base, canary) in pages.items():
        for kind in PAGE_KINDS:
            b, c = base.of(kind), canary.of(kind)
            if not b.latencies_ms and kind is Kind.INP:
                continue
            metrics.append(_page_metric(page, kind, b, c, criteria, rng))
        loads_base = loads_base.merged(base.load_errors())
        loads_canary = loads_canary.merged(canary.load_errors())
    metrics.append(
        _error_metric(ALL_PAGES, loads_base, loads_canary, criteria, criteria.min_page_samples)
    )
    return metrics


def _page_metric(
    page: str,
    kind: Kind,
    base: ArmSamples,
    canary: ArmSamples,
    criteria: Criteria,
    rng: np.random.Generator,
) -> Metric:
    import numpy as np

    metric = Metric(
        page,
        kind,
        _arm(base),
        _arm(canary),
        threshold=criteria.threshold(kind, f"{page}:{kind}"),
        critical=criteria.is_critical(f"{page}:{kind}"),
    )
    few = min(len(base.latencies_ms), len(canary.latencies_ms))
    if few < criteria.min_page_samples:
        metric.note = (
            f"no data: {few} page loads measured it in an arm, at least "
            f"{criteria.min_page_samples} needed"
        )
        return metric
    b, c = np.asarray(base.latencies_ms), np.asarray(canary.latencies_ms)
    p = _small_rank_test(b, c, rng)
    if kind in ADDITIVE:
        shift, interval = hodges_lehmann(b, c)
        metric.effect, metric.interval = shift, interval
    else:
        shift, (low, high) = hodges_lehmann(
            np.log(np.maximum(b, MIN_LATENCY_MS)), np.log(np.maximum(c, MIN_LATENCY_MS))
        )
        metric.effect, metric.interval = math.expm1(shift), (math.expm1(low), math.expm1(high))
    metric.p_value = p
    return metric


def _small_rank_test(base: np.ndarray, canary: np.ndarray, rng: np.random.Generator) -> float:
    """One-sided Mann-Whitney U (canary greater) for small arms: exact without ties; with
    ties, the normal approximation, refined by a permutation test (tie-aware) when it could
    matter - the approximation overstates small p-values there (10 loads against 10, every
    canary load slower: 8e-5 instead of the exact 5e-6). 1 when every value is the same (a
    CLS of 0 everywhere: no evidence of anything)."""
    import numpy as np
    from scipy import stats

    joined = np.concatenate([base, canary])
    if np.all(joined == joined[0]):
        return 1.0
    small = max(base.size, canary.size) <= EXACT_MAX_SAMPLES
    if small and np.unique(joined).size == joined.size:
        return float(stats.mannwhitneyu(canary, base, alternative="greater", method="exact").pvalue)
    p = float(stats.mannwhitneyu(canary, base, alternative="greater").pvalue)
    if small and p < PERMUTATION_SCREEN_P:
        method = stats.PermutationMethod(n_resamples=PERMUTATIONS, rng=rng)
        p = float(stats.mannwhitneyu(canary, base, alternative="greater", method=method).pvalue)
    return p


def _error_metric(
    endpoint: str,
    base: ArmSamples,
    canary: ArmSamples,
    criteria: Criteria,
    min_requests: int | None = None,
) -> Metric:
    metric = Metric(
        endpoint,
        Kind.ERRORS,
        _arm(base),
        _arm(canary),
        threshold=criteria.threshold(Kind.ERRORS, f"{endpoint}:{Kind.ERRORS}"),
        critical=criteria.is_critical(f"{endpoint}:{Kind.ERRORS}"),
    )
    needed = criteria.min_samples if min_requests is None else min_requests
    few = min(base.requests, canary.requests)
    if few < needed:
        metric.note = f"no data: {few} requests in an arm, at least {needed} needed"
        return metric
    metric.effect, metric.interval, metric.p_value = _errors(base, canary)
    return metric


def _verdict(metrics: list[Metric], criteria: Criteria) -> Judgement:
    judged = [m for m in metrics if m.classification is not Classification.INCONCLUSIVE]
    weight = {m.name: float(criteria.weights.get(m.kind, 1.0)) for m in judged}
    total = sum(weight.values())
    score = (
        PERCENT
        * sum(weight[m.name] for m in judged if m.classification is Classification.PASS)
        / total
        if total
        else None
    )
    regressions = [m for m in judged if m.classification is Classification.REGRESSION]
    critical = [m for m in regressions if m.critical]
    missing = [m for m in metrics if m.classification is Classification.INCONCLUSIVE]
    if critical:
        result = Result.FAIL
        reason = f"{len(critical)} critical metric(s) regressed: {_names(critical)}"
    elif score is not None and score < criteria.marginal_score:
        result, reason = Result.FAIL, f"score {score:.0f} is below marginal"
    elif missing:
        result = Result.INCONCLUSIVE
        reason = f"{len(missing)} metric(s) without enough data: {_names(missing)}"
    elif score is not None and score < criteria.pass_score:
        result, reason = Result.MARGINAL, f"score {score:.0f} is between marginal and pass"
    else:
        result = Result.PASS
        reason = f"no regression over {len(judged)} metrics"
    return Judgement(metrics, criteria, score, result, reason)


def _names(metrics: list[Metric]) -> str:
    shown = ", ".join(m.name for m in metrics[:MAX_NAMED])
    return shown + (f" and {len(metrics) - MAX_NAMED} more" if len(metrics) > MAX_NAMED else "")


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _unitless(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _score_text(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.0f}"
