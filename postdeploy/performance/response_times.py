"""Response-time SLOs: N timed requests after a warm-up, p50/p95/p99, judged on the p95.

Percentiles use the nearest-rank method on the samples themselves (no histogram buckets).
Sampling stops early once enough samples are over the limit that the p95 can no longer be
within it: a slow endpoint is not hammered, and a broken deploy is reported sooner.

Each endpoint's requests go one after another; different endpoints may be sampled at the
same time (:func:`sample_each`, at most the target's ``concurrency`` at once), as users of
different pages are served at the same time.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from postdeploy.sysutil import outcomes

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

PERCENTILES = (0.50, 0.95, 0.99)
JUDGED = 0.95


def nearest_rank(values: list[float], fraction: float) -> float:
    """The smallest sample with at least ``fraction`` of all samples at or below it."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def allowed_over(count: int, fraction: float = JUDGED) -> int:
    """How many of ``count`` samples may exceed the limit while the percentile stays within."""
    return count - max(1, math.ceil(fraction * count))


@dataclass
class Samples:
    """Timed requests to one endpoint."""

    endpoint: str
    planned: int
    warmup: int
    limit_ms: float
    times_ms: list[float] = field(default_factory=list)

    @property
    def stopped_early(self) -> bool:
        return len(self.times_ms) < self.planned

    def percentile(self, fraction: float) -> float:
        return nearest_rank(self.times_ms, fraction)

    @property
    def p95_ms(self) -> float:
        return self.percentile(JUDGED)

    @property
    def over_limit(self) -> int:
        return sum(1 for t in self.times_ms if t > self.limit_ms)

    def within(self) -> bool:
        return self.p95_ms <= self.limit_ms

    def figures(self) -> str:
        p50, p95, p99 = (self.percentile(f) for f in PERCENTILES)
        text = (
            f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, p99 {p99:.0f} ms, "
            f"max {max(self.times_ms):.0f} ms over {len(self.times_ms)} samples "
            f"after {self.warmup} warm-up requests"
        )
        if self.stopped_early:
            text += (
                f" (stopped early: {self.over_limit} of {len(self.times_ms)} samples were over "
                f"{self.limit_ms:.0f} ms, so the p95 could not be within it)"
            )
        return text

    def table(self) -> str:
        header = f"{'endpoint':<34} {'samples':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}"
        p50, p95, p99 = (self.percentile(f) for f in PERCENTILES)
        row = (
            f"{self.endpoint:<34} {len(self.times_ms):>7} {p50:>6.0f}ms {p95:>6.0f}ms "
            f"{p99:>6.0f}ms {max(self.times_ms):>6.0f}ms"
        )
        verdict = "within" if self.within() else "OVER"
        return "\n".join(
            [header, "-" * len(header), row, "", f"p95 {verdict} the {self.limit_ms:.0f} ms SLO"]
        )


def sample(
    endpoint: str,
    send: Callable[[], httpx.Response],
    expected_status: int,
    samples: int,
    warmup: int,
    limit_ms: float,
) -> Samples:
    """Warm up, then time ``samples`` requests; every timed answer must be the expected one."""
    for _ in range(warmup):
        # a cold start may time out; only the timed samples count
        with contextlib.suppress(httpx.TimeoutException):
            send()
    result = Samples(endpoint, samples, warmup, limit_ms)
    budget = allowed_over(samples)
    for _ in range(samples):
        started = time.perf_counter()
        response = send()
        elapsed_ms = (time.perf_counter() - started) * 1000
        assert response.status_code == expected_status, (
            f"{endpoint}: expected HTTP {expected_status} while timing it, got "
            f"{response.status_code}: {response.text[:200]}"
        )
        result.times_ms.append(elapsed_ms)
        if result.over_limit > budget:
            break
    return result


def sample_each(
    samplers: Mapping[str, Callable[[], Samples]], in_flight: int
) -> dict[str, Samples | Exception]:
    """Run every sampler (one endpoint's :func:`sample`), at most ``in_flight`` at once; each
    name's samples, or the exception its sampler raised (for that endpoint's check to raise:
    one endpoint's failure is not another's)."""
    if in_flight < 1:
        raise ValueError(f"in_flight must be at least 1, got {in_flight}")
    names = list(samplers)
    results = outcomes(lambda name: samplers[name](), names, in_flight, "response-times")
    return dict(zip(names, results, strict=True))
