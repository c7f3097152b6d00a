"""Record latency samples of the healthy reference app for the canary judge's benchmark.

Deploys the reference app on loopback (its own state dir and port), sends ``--samples``
timed requests to every key endpoint with the canary judge's own traffic code (one arm), and
writes ``benchmarks/data/latencies-healthy.json.gz``: per endpoint the latencies in ms and the
error count. Run once; ``bench_judge.py`` draws its A/A and power comparisons from the file.

    PYTHONPATH=. .venv/bin/python benchmarks/record_latencies.py [--samples 2000] [--port 19601]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import platform as host
import tempfile
import time
from pathlib import Path

from postdeploy.config import Target
from postdeploy.local.platform import LocalPlatform
from postdeploy.performance.canary import CANARY, Arm, Plan, collect

DATA = Path(__file__).resolve().parent / "data" / "latencies-healthy.json.gz"
DEFAULT_SAMPLES = 2000
DEFAULT_PORT = 19601
WARMUP = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--output", type=Path, default=DATA)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="record-latencies-") as state:
        url = f"https://127.0.0.1:{args.port}"
        local = LocalPlatform(url, state_dir=Path(state))
        release = local.deploy("1.0.0")
        try:
            target = Target("record", "local", url, ca_file=str(local.ca_file))
            started = time.monotonic()
            samples = collect(
                target, [Arm(CANARY, url, str(local.ca_file))], Plan(args.samples, WARMUP), "rec"
            )
            took = time.monotonic() - started
        finally:
            local.stop()
    document = {
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "release": release.ref,
        "host": f"{host.node()} {host.machine()} python {host.python_version()}",
        "seconds": round(took, 1),
        "samples_per_endpoint": args.samples,
        "warmup": WARMUP,
        "endpoints": {
            name: {
                "latencies_ms": [round(x, 3) for x in arms[0].latencies_ms],
                "errors": arms[0].errors,
            }
            for name, arms in samples.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.output, "wt", encoding="utf-8") as out:
        json.dump(document, out)
    size = args.output.stat().st_size
    print(f"recorded {args.samples} samples x {len(samples)} endpoints in {took:.0f} s")
    print(f"wrote {args.output} ({size / 1024:.0f} KiB)")
    for name, arms in samples.items():
        summary = dataclasses.replace(arms[0]).summary()
        print(
            f"  {name:<16} median {summary['median_ms']:>6} ms  p95 {summary['p95_ms']:>6} ms  "
            f"p99 {summary['p99_ms']:>6} ms  errors {summary['errors']}"
        )


if __name__ == "__main__":
    main()
