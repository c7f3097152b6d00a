"""Run-to-run variation of the history check's samples, and the history judge on recorded runs.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_run_to_run.py [--runs 16] [--order round-robin]
        [--windows 20] [--save runs.json.gz | --load runs.json.gz]

Deploys the healthy reference app (1.0.0) and the ``latency_regression`` release (2.0.0) side
by side on loopback (private state dirs, free ports) and records ``--runs`` runs of each,
alternating, each run ``[canary] history_samples`` (200) timed requests per key endpoint with
the canary judge's own traffic code: ``--order round-robin`` is what the harness sends
(``canary.collect``), ``--order blocks`` the order it sent before (all of one endpoint's
requests, then the next endpoint's), for comparison.

Then, per latency statistic (p10 ... p99), how much whole runs differ: the standard deviation
of a run's level (the mean over endpoints of the log statistic) and what is left per endpoint
once that common part is removed. And the history judge on the recorded runs: each healthy run
judged against the three healthy runs before it (and ``--windows`` random sets of three
others), as ``--compare-with previous:3`` does, and the slow release's run of the same round
against the same three: false alarms and detections. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from postdeploy.config import Target
from postdeploy.local.platform import LocalPlatform
from postdeploy.performance.canary import CANARY, Arm, Plan, arm_clients, collect, prepare_arm
from postdeploy.performance.judge import (
    CONTROL_SIGMAS,
    LEVELS,
    ArmSamples,
    Criteria,
    Result,
    expected_range,
    judge,
    pool,
    run_level,
    run_to_run_drift,
)
from postdeploy.sysutil import free_port

SAMPLES = 200
WARMUP = 5
STORED = 3
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.95, 0.99)
RELEASES = {"healthy": ("1.0.0", []), "slow": ("2.0.0", ["latency_regression"])}

Run = dict[str, ArmSamples]


def _in_blocks(target: Target, arm: Arm, plan: Plan, run_id: str) -> Run:
    """The order sent before round-robin: one endpoint's requests, then the next one's."""
    samples: Run = {}
    with arm_clients([arm], target, run_id) as (client,):
        prepare_arm(client, needs_login=True)
        for endpoint in plan.endpoints:
            for _ in range(plan.warmup):
                client.send(endpoint)
            latencies, errors = [], 0
            for _ in range(plan.samples):
                latency, _what = client.send(endpoint)
                if latency is None:
                    errors += 1
                else:
                    latencies.append(latency)
            samples[endpoint.name] = ArmSamples(tuple(latencies), plan.samples, errors)
    return samples


def record(runs: int, order: str) -> dict[str, list[Run]]:
    recorded: dict[str, list[Run]] = {name: [] for name in RELEASES}
    with tempfile.TemporaryDirectory(prefix="pd-run-to-run-") as state:
        deployments = {}
        try:
            for name, (version, faults) in RELEASES.items():
                url = f"https://127.0.0.1:{free_port()}"
                local = LocalPlatform(url, state_dir=Path(state) / name)
                deployments[name] = local
                local.deploy(version, faults)
            for index in range(runs):
                for name, local in deployments.items():
                    url = local.url
                    target = Target("bench", "local", url, ca_file=str(local.ca_file))
                    arm = Arm(CANARY, url, str(local.ca_file))
                    plan = Plan(SAMPLES, WARMUP)
                    started = time.monotonic()
                    if order == "blocks":
                        run = _in_blocks(target, arm, plan, f"rr{index}{name}")
                    else:
                        both = collect(target, [arm], plan, f"rr{index}{name}")
                        run = {endpoint: arms[0] for endpoint, arms in both.items()}
                    recorded[name].append(run)
                    took = time.monotonic() - started
                    print(f"run {index + 1} {name}: {took:.1f} s", flush=True)
        finally:
            for local in deployments.values():
                local.stop()
    return recorded


def components(runs: list[Run]) -> None:
    names = sorted(runs[0])
    print("| statistic | level | run-to-run sd of the level | left per endpoint |")
    print("| --- | --- | --- | --- |")
    for q in QUANTILES:
        logs = np.array(
            [[np.log(np.quantile(run[n].latencies_ms, q)) for n in names] for run in runs]
        )
        level = logs.mean(axis=1)
        residual = logs - logs.mean(axis=0) - (level - level.mean())[:, None]
        print(
            f"| p{round(q * 100)} | {np.exp(level.mean()):.2f} ms | {level.std(ddof=1):.3f} "
            f"| {residual.std():.3f} |"
        )


def levels(runs: list[Run], q: float) -> np.ndarray:
    return np.array([run_level(run, sorted(runs[0]), q) for run in runs])


def simulate(recorded: dict[str, list[Run]], draws: int = 200_000) -> None:
    """The control limit of K = 3 runs on normal levels with the measured run-to-run sd: the
    false alarms of a healthy run and the detections of a run slower by the measured effect
    (both exchangeable with the three), per kind, allowed increase +10 %."""
    rng = np.random.default_rng(0)
    scale = CONTROL_SIGMAS * np.sqrt(1 + 1 / STORED) / expected_range(STORED)
    print("\n| kind (K = 3, simulated) | run-to-run sd | slow release's effect | false alarms "
          "| detected |")  # fmt: skip
    print("| --- | --- | --- | --- | --- |")
    for kind, q in LEVELS.items():
        sd = float(levels(recorded["healthy"], q).std(ddof=1))
        effect = float(levels(recorded["slow"], q).mean() - levels(recorded["healthy"], q).mean())
        x = rng.normal(0.0, sd, (draws, STORED + 1))
        earlier = x[:, :STORED]
        limit = np.log(1.1 + np.expm1(scale * (earlier.max(axis=1) - earlier.min(axis=1))))
        over = x[:, STORED] - earlier.mean(axis=1)
        print(
            f"| {kind} | {sd:.3f} | {np.expm1(effect):+.0%} | {np.mean(over > limit):.2%} "
            f"| {np.mean(over + effect > limit):.0%} |"
        )


def windows(count: int, n: int) -> list[tuple[int, list[int]]]:
    chosen = [(i, list(range(i - STORED, i))) for i in range(STORED, n)]
    pick = random.Random(0)
    for _ in range(count):
        new = pick.randrange(n)
        chosen.append((new, pick.sample([i for i in range(n) if i != new], STORED)))
    return chosen


def judge_windows(recorded: dict[str, list[Run]], count: int) -> None:
    healthy, slow = recorded["healthy"], recorded["slow"]
    criteria = Criteria(seed=1)
    false_alarms = detections = 0
    chosen = windows(count, len(healthy))
    for new, earlier in chosen:
        stored = [healthy[i] for i in earlier]
        reference = pool(stored)
        judged = replace(criteria, drift=run_to_run_drift(stored, criteria))
        verdicts = []
        for name, run in (("healthy", healthy[new]), ("slow", slow[new])):
            judgement = judge({n: (reference[n], run[n]) for n in reference}, judged)
            failed = judgement.result is Result.FAIL
            verdicts.append(f"{name} {'failed' if failed else 'passed'} "
                            f"({len(judgement.regressions)} regressed)")  # fmt: skip
            false_alarms += failed and name == "healthy"
            detections += failed and name == "slow"
        print(f"run {new + 1} against {[i + 1 for i in earlier]}: {', '.join(verdicts)}")
    print(f"\n| judged against 3 earlier healthy runs ({len(chosen)} windows) | result |")
    print("| --- | --- |")
    print(f"| healthy run failed (false alarm) | {false_alarms}/{len(chosen)} |")
    print(f"| latency_regression run failed | {detections}/{len(chosen)} |")


def _save(recorded: dict[str, list[Run]], path: Path) -> None:
    document = {
        name: [
            {n: [list(a.latencies_ms), a.requests, a.errors] for n, a in run.items()}
            for run in runs
        ]
        for name, runs in recorded.items()
    }
    with gzip.open(path, "wt", encoding="utf-8") as file:
        json.dump(document, file)


def _load(path: Path) -> dict[str, list[Run]]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        document = json.load(file)
    return {
        name: [{n: ArmSamples(tuple(v[0]), v[1], v[2]) for n, v in run.items()} for run in runs]
        for name, runs in document.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=16, help="runs of each release (16)")
    parser.add_argument("--order", choices=("round-robin", "blocks"), default="round-robin")
    parser.add_argument("--windows", type=int, default=20, help="random windows judged (20)")
    parser.add_argument("--save", type=Path, help="write the recorded runs here")
    parser.add_argument("--load", type=Path, help="judge runs recorded earlier (--save)")
    args = parser.parse_args()
    recorded = _load(args.load) if args.load else record(args.runs, args.order)
    if args.save:
        _save(recorded, args.save)
    for name, runs in recorded.items():
        how = f"loaded from {args.load}" if args.load else f"sent {args.order}"
        print(f"\n{name} release, {len(runs)} runs, {how}:")
        components(runs)
    print()
    judge_windows(recorded, args.windows)
    simulate(recorded)


if __name__ == "__main__":
    main()
