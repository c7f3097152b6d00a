"""Canary judge: false-alarm rate, power and speed, from latencies recorded on the healthy app.

Reads ``benchmarks/data/latencies-healthy.json.gz`` (``record_latencies.py``: 2,000 samples
per key endpoint of the healthy reference app on this machine). Every comparison draws both
arms without replacement from the same endpoint's recording, so the arms are the same release;
the power scenarios then change the canary arm:

* A/A: nothing changed - every failed judgement is a false alarm (target: <= 1 % of runs);
* one endpoint 20 % slower (its canary latencies x 1.2) - detected >= 95 %;
* 1 % errors on the canary (each request fails with probability 0.01), none on the baseline;
* 7 of 100 requests 100x slower on one endpoint (at N = 100, and the same 7 % at the default N).

The judge runs over the full metric set (11 endpoints x latency, p95, p99, errors, plus the
pooled error rate = 45 metrics) with the default criteria (run false-alarm rate 1 %, +10 %
latency, +0.1 pp errors, Holm). Timing is the judge alone (no traffic).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_judge.py [--aa 1000] [--power 200]

``--e2e RUNS`` adds the end-to-end figure: a stable 1.0.0 and a canary on two real local
deployments (ports 19604/19605, temporary state dirs), RUNS healthy canary judgements with live
interleaved traffic, then one with the ``latency_regression`` fault.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from postdeploy.config import Target
from postdeploy.performance.judge import (
    ArmSamples,
    Classification,
    Criteria,
    Judgement,
    Kind,
    Result,
    judge,
)

DATA = Path(__file__).resolve().parent / "data" / "latencies-healthy.json.gz"
DEFAULT_N = 1000
SLOWER = 1.2
ERROR_RATE = 0.01
OUTLIER_FACTOR = 100.0
OUTLIER_SHARE = 0.07
SMALL_N = 100
JUDGE_BUDGET_S = 30.0
E2E_PORTS = (19604, 19605)
PROGRESS_EVERY = 100

Pools = dict[str, np.ndarray]


def load() -> tuple[Pools, dict[str, object]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as file:
        data = json.load(file)
    pools = {name: np.asarray(e["latencies_ms"]) for name, e in data["endpoints"].items()}
    return pools, data


def draw(rng: np.random.Generator, pool: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    both = rng.choice(pool, size=2 * n, replace=False)
    return both[:n], both[n:]


def run(
    pools: Pools,
    n: int,
    runs: int,
    seed: int,
    change: Callable[[np.random.Generator, str, np.ndarray], ArmSamples | None] | None = None,
) -> tuple[list[Judgement], list[float], list[str]]:
    """``runs`` judgements; ``change`` turns one endpoint's canary draw into its samples."""
    rng = np.random.default_rng(seed)
    names = list(pools)
    judgements, times, changed = [], [], []
    for i in range(runs):
        victim = names[i % len(names)]
        pairs = {}
        for name, pool in pools.items():
            base, canary = draw(rng, pool, n)
            arm = change(rng, name if name == victim else "", canary) if change else None
            pairs[name] = (ArmSamples.of(base), arm or ArmSamples.of(canary))
        started = time.perf_counter()
        judgements.append(judge(pairs, Criteria(seed=int(rng.integers(1 << 31)))))
        times.append(time.perf_counter() - started)
        changed.append(victim)
        if (i + 1) % PROGRESS_EVERY == 0:
            bad = sum(j.result is not Result.PASS for j in judgements)
            print(f"   ... {i + 1}/{runs} runs, {bad} not passed", flush=True)
    return judgements, times, changed


def slower(rng: np.random.Generator, victim: str, canary: np.ndarray) -> ArmSamples | None:
    return ArmSamples.of(canary * SLOWER) if victim else None


def failing(rng: np.random.Generator, victim: str, canary: np.ndarray) -> ArmSamples:
    ok = rng.random(canary.size) >= ERROR_RATE
    return ArmSamples.of(canary[ok], errors=int((~ok).sum()))


def outliers(rng: np.random.Generator, victim: str, canary: np.ndarray) -> ArmSamples | None:
    if not victim:
        return None
    changed = canary.copy()
    count = round(OUTLIER_SHARE * canary.size)
    changed[rng.choice(canary.size, size=count, replace=False)] *= OUTLIER_FACTOR
    return ArmSamples.of(changed)


def regressed(judgement: Judgement, endpoint: str, kinds: tuple[Kind, ...]) -> bool:
    return judgement.result is Result.FAIL and any(
        m.endpoint == endpoint and m.kind in kinds for m in judgement.regressions
    )


def end_to_end(runs: int, samples: int) -> None:
    """Healthy canary against its stable release ``runs`` times, then the slow release."""
    from postdeploy.config import load_targets
    from postdeploy.local.platform import LocalPlatform
    from postdeploy.performance.canary import BASELINE, CANARY, Arm, collect, paired, plan_traffic

    with tempfile.TemporaryDirectory(prefix="bench-judge-") as root:
        stable = LocalPlatform(f"https://127.0.0.1:{E2E_PORTS[0]}", Path(root) / "stable")
        canary = LocalPlatform(f"https://127.0.0.1:{E2E_PORTS[1]}", Path(root) / "canary")
        template = load_targets(Path(__file__).resolve().parents[1] / "targets.toml")
        target = template.targets["local"].with_url(canary.url)
        arms = [Arm(BASELINE, stable.url, str(stable.ca_file)), Arm(CANARY, canary.url)]
        try:
            stable.deploy("1.0.0")
            scenarios: tuple[tuple[str, list[str], int], ...] = (
                ("healthy", [], runs),
                ("latency_regression", ["latency_regression"], 1),
            )
            for label, faults, count in scenarios:
                canary.deploy("1.1.0", faults)
                target = _with_ca(target, str(canary.ca_file))
                plan = plan_traffic(samples, 5, 10**6, 50)
                results, took = [], []
                for _ in range(count):
                    started = time.monotonic()
                    pairs = paired(collect(target, arms, plan, "benchjudge"))
                    results.append(judge(pairs, Criteria()))
                    took.append(time.monotonic() - started)
                passed = sum(j.result is Result.PASS for j in results)
                print(
                    f"e2e {label}: {passed}/{count} passed at N = {samples} "
                    f"(traffic + judge {np.median(took):.0f} s per run)"
                )
                for j in results:
                    if j.result is not Result.PASS:
                        print(f"   {j.result}: {j.reason}")
        finally:
            canary.stop()
            stable.stop()


def _with_ca(target: Target, ca_file: str) -> Target:
    return dataclasses.replace(target, ca_file=ca_file)


def power(pools: Pools, n_default: int, runs: int) -> None:
    latency_kinds = (Kind.LATENCY, Kind.P95, Kind.P99)
    js, _, victims = run(pools, n_default, runs, seed=2, change=slower)
    hits = sum(regressed(j, v, latency_kinds) for j, v in zip(js, victims, strict=True))
    print(f"one endpoint 20 % slower: detected {hits}/{len(js)} ({hits / len(js):.1%}; >= 95 %)")

    js, _, _ = run(pools, n_default, runs, seed=3, change=failing)
    hits = sum(regressed(j, "all", (Kind.ERRORS,)) for j in js)
    print(f"1 % errors vs zero-error baseline: detected {hits}/{len(js)} ({hits / len(js):.1%})")

    for n in (SMALL_N, n_default):
        js, _, victims = run(pools, n, runs, seed=4, change=outliers)
        hits = sum(regressed(j, v, latency_kinds) for j, v in zip(js, victims, strict=True))
        count = round(OUTLIER_SHARE * n)
        print(
            f"{count} of {n} requests 100x slower: detected {hits}/{len(js)} ({hits / len(js):.1%})"
        )
        kinds = {
            str(m.kind)
            for j in js
            for m in j.regressions
            if m.classification is Classification.REGRESSION
        }
        print(f"   caught by: {', '.join(sorted(kinds)) or 'nothing'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aa", type=int, default=1000, help="A/A comparisons")
    parser.add_argument("--power", type=int, default=200, help="runs per power scenario")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="samples per arm")
    parser.add_argument("--e2e", type=int, default=0, metavar="RUNS", help="live healthy runs")
    parser.add_argument("--e2e-samples", type=int, default=200, help="samples per arm, live")
    parser.add_argument("--skip-recorded", action="store_true", help="only the live figure")
    args = parser.parse_args()
    if args.e2e:
        end_to_end(args.e2e, args.e2e_samples)
    if args.skip_recorded:
        return
    pools, data = load()
    print(
        f"recording: {data['samples_per_endpoint']} samples x {len(pools)} endpoints of "
        f"{data['release']} ({data['recorded_at']}, {data['host']})"
    )
    print(f"N = {args.n} per arm, {len(pools) * 4 + 1} metrics per run, run false-alarm 1 %\n")

    if args.aa:
        aa, times, _ = run(pools, args.n, args.aa, seed=1)
        false_alarms = [j for j in aa if j.result is not Result.PASS]
        print(
            f"A/A: {len(false_alarms)} of {len(aa)} runs not passed "
            f"({len(false_alarms) / len(aa):.2%}; target <= 1 %)"
        )
        for j in false_alarms[:5]:
            print(f"   {j.result}: {j.reason}")
        print(
            f"judge time per run: median {np.median(times):.2f} s, max {max(times):.2f} s "
            f"(budget {JUDGE_BUDGET_S:.0f} s)"
        )

    if args.power:
        power(pools, args.n, args.power)


if __name__ == "__main__":
    main()
