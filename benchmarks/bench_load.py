"""Load-generation speed: the harness vs plain Locust vs wrk, and a smoke profile's overhead.

    python benchmarks/bench_load.py [--seconds 10] [--rounds 3] [--skip-smoke]

1. Throughput against a static loopback endpoint (benchmarks/static_endpoint.py), in one run
   and alternating, ``--rounds`` times each, median reported, as requests per second of wall
   time and as requests per CPU-second of the load generator's processes (what the generator
   costs, which other work on a shared machine does not distort):
   * the harness: ``postdeploy.performance.load.run_load`` with the ``capacity`` profile (10 users
     requesting / back to back, our locustfile, its abort watcher, a separate process);
   * plain Locust: ``locust --headless -u 10 -t Ns`` with benchmarks/plain_locustfile.py;
   * wrk: ``wrk -t1 -c10 -dNs`` (C, one thread, 10 connections).
   Locust's figures are requests / (last request - first request) from its --json-file.
2. The ``smoke`` profile against a real local deployment (private state dir, free port):
   the wall time of ``run_load`` vs the run time Locust reports for the profile.

Prints a Markdown table for the README. Figures, not assertions: the machine decides.
Load goes to loopback only and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postdeploy.performance.load import LoadSettings, parse_stats, run_load
from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
USERS = 10
WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
SERVER_START_TIMEOUT_S = 10.0
WRK = shutil.which("wrk")  # Debian package wrk (./bootstrap installs it)
GRACE_S = 60


def start_static_endpoint(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, str(HERE / "static_endpoint.py"), str(port)])
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("the static endpoint did not start")


def children_cpu_s() -> float:
    """CPU seconds used so far by this process's finished children (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def harness_rps(host: str, seconds: float, out: Path) -> tuple[float, float]:
    settings = LoadSettings(host=host, profile="capacity", max_duration_s=seconds, run_id="bench")
    cpu = children_cpu_s()
    result = run_load(settings, out)
    cpu = children_cpu_s() - cpu
    assert result.total is not None, result.violations()
    assert result.total.failures == 0, result.violations()
    return result.total.requests / result.span_s, result.total.requests / cpu


def plain_locust_rps(host: str, seconds: float, out: Path) -> tuple[float, float]:
    out.mkdir(parents=True, exist_ok=True)
    cpu = children_cpu_s()
    prefix = out / "plain"
    subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", str(HERE / "plain_locustfile.py"),
            "--headless", "--host", host, "-u", str(USERS), "-r", str(USERS),
            "-t", f"{seconds:.0f}s", "--json-file", str(prefix), "--only-summary",
        ],
        cwd=out, capture_output=True, timeout=seconds + GRACE_S, check=True,
    )  # fmt: skip
    cpu = children_cpu_s() - cpu
    _, total, span = parse_stats(prefix.with_suffix(".json"))
    assert total.failures == 0
    return total.requests / span, total.requests / cpu


WRK_TOTAL = re.compile(r"(\d+) requests in")


def wrk_rps(host: str, seconds: float) -> tuple[float, float]:
    assert WRK
    cpu = children_cpu_s()
    done = subprocess.run(
        [WRK, "-t1", f"-c{USERS}", f"-d{seconds:.0f}s", host + "/"],
        capture_output=True, text=True, timeout=seconds + GRACE_S, check=True,
    )  # fmt: skip
    cpu = children_cpu_s() - cpu
    rate, total = WRK_RATE.search(done.stdout), WRK_TOTAL.search(done.stdout)
    assert rate, done.stdout
    assert total, done.stdout
    return float(rate.group(1)), int(total.group(1)) / cpu


def throughput(seconds: float, rounds: int, work: Path) -> dict[str, list[tuple[float, float]]]:
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    server = start_static_endpoint(port)
    figures: dict[str, list[tuple[float, float]]] = {"harness": [], "plain": [], "wrk": []}
    try:
        for round_ in range(rounds):
            figures["harness"].append(harness_rps(host, seconds, work / f"harness-{round_}"))
            figures["plain"].append(plain_locust_rps(host, seconds, work / f"plain-{round_}"))
            if WRK:
                figures["wrk"].append(wrk_rps(host, seconds))
            rates = ", ".join(
                f"{k} {v[-1][0]:.0f}/s ({v[-1][1]:.0f}/CPU-s)" for k, v in figures.items() if v
            )
            print(f"round {round_ + 1}: {rates}", file=sys.stderr)
    finally:
        server.kill()
        server.wait()
    return figures


def smoke_overhead(work: Path) -> dict[str, float]:
    from postdeploy.local.platform import LocalPlatform

    port = free_port()
    platform = LocalPlatform(f"https://127.0.0.1:{port}", state_dir=work / "state")
    platform.deploy("1.0.0")
    try:
        settings = LoadSettings(
            host=platform.url, profile="smoke", ca_file=str(platform.ca_file), run_id="bench"
        )
        result = run_load(settings, work / "smoke")
    finally:
        platform.stop()
    assert result.total is not None
    return {
        "wall_s": result.wall_s,
        "run_s": result.run_s,
        "overhead_s": result.overhead_s,
        "requests": result.total.requests,
        "failures": result.total.failures,
        "p95_ms": result.total.p95_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-smoke", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        work = Path(tmp)
        figures = throughput(options.seconds, options.rounds, work)
        smoke = None if options.skip_smoke else smoke_overhead(work)
    wall = {k: statistics.median(r for r, _ in v) for k, v in figures.items() if v}
    cpu = {k: statistics.median(c for _, c in v) for k, v in figures.items() if v}
    print(f"\n| load generator ({options.rounds} rounds of {options.seconds:.0f} s, median) "
          "| requests/s | requests per CPU-second | vs plain Locust (CPU) |")  # fmt: skip
    print("| --- | --- | --- | --- |")
    names = {
        "harness": f"postdeploy (`capacity` profile, {USERS} users, separate process)",
        "plain": "plain `locust`, same user loop",
        "wrk": f"`wrk -t1 -c{USERS}`",
    }
    for key, name in names.items():
        if key in wall:
            print(
                f"| {name} | {wall[key]:.0f} | {cpu[key]:.0f} | "
                f"{cpu[key] / cpu['plain']:.2f} (wall: {wall[key] / wall['plain']:.2f}) |"
            )
    if smoke:
        print("\n| smoke profile on the local target | figure |\n| --- | --- |")
        print(f"| the profile's run, as Locust times it | {smoke['run_s']:.1f} s |")
        print(f"| the harness, wall time | {smoke['wall_s']:.1f} s |")
        print(f"| harness overhead | {smoke['overhead_s']:.1f} s |")
        print(
            f"| requests, failed, p95 | {smoke['requests']:.0f}, {smoke['failures']:.0f}, "
            f"{smoke['p95_ms']:.0f} ms |"
        )
    if options.json:
        summary = {"rounds": figures, "wall": wall, "cpu": cpu, "smoke": smoke}
        options.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
