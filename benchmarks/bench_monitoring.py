"""Monitoring suite speed: the whole suite against the local target, Prometheus start included.

    python benchmarks/bench_monitoring.py [--runs N]

Measures, on a private state dir and a free port (never a running local deployment):

* the wall clock of ``pytest suites/monitoring --target local`` with a release already
  deployed, and with nothing deployed (the run deploys and stops it);
* its parts: a harness-started Prometheus until ready, and until its first scrape of the
  target (Prometheus's service discovery hands targets over every 5 s);
* deploying a release (the local Sentry stand-in starts with it).

Prints a Markdown table for the README. Figures, not assertions: the machine decides.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postdeploy.config import load_targets
from postdeploy.local.platform import LocalPlatform
from postdeploy.local.prometheus import ScrapeSpec, shared_local_prometheus
from postdeploy.monitoring.prometheus import PrometheusAPI, wait_for_scrape
from postdeploy.sysutil import free_port

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 300
TARGET_S = 30.0
#: pytest's closing line: "16 passed in 11.58s"
SESSION_TIME = re.compile(r" in ([0-9.]+)s\b")


def suite_run(env: dict[str, str], reports: Path) -> tuple[float, float, dict]:
    """(wall clock, pytest's own session time, verdict) of one monitoring suite run."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/monitoring", "--target", "local", "-q",
         "-p", "no:cacheprovider", "--reports-dir", str(reports)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    times = SESSION_TIME.findall(done.stdout)
    session = float(times[-1]) if times else float("nan")
    verdict = json.loads((reports / "verdict.json").read_text())
    if done.returncode != 0:
        print(done.stdout[-2000:], file=sys.stderr)
    return elapsed, session, verdict


def prometheus_start(platform: LocalPlatform, url: str, folder: Path) -> tuple[float, float]:
    """(start -> ready, start -> first scrape of the target) of a harness-style Prometheus."""
    target = load_targets(REPO / "targets.toml", environ={}).targets["local"]
    settings = target.monitoring
    spec = ScrapeSpec(
        url=url, ca_file=str(platform.ca_file), job=settings.scrape_job,
        interval_s=settings.scrape_interval_s, error_ratio=target.thresholds.error_rate,
        latency_s=target.thresholds.response_time_ms / 1000,
        severity_label=settings.severity_label, critical=settings.critical_severity,
    )  # fmt: skip
    started = time.perf_counter()
    with shared_local_prometheus(folder, spec) as prometheus_url:
        ready = time.perf_counter() - started
        api = PrometheusAPI(prometheus_url, settings.query_timeout_s)
        wait_for_scrape(api, settings.scrape_job, settings.prometheus_wait_s)
        scraped = time.perf_counter() - started
        api.close()
    return ready, scraped


def row(name: str, values: list[float], note: str = "") -> str:
    return (
        f"| {name} | {statistics.median(values):.1f} s | {min(values):.1f}-{max(values):.1f} s "
        f"| {note} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Repetitions (default: 3)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="pd-bench-mon-"))
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"),
           "POSTDEPLOY_LOCAL_URL": url, "PYTEST_ADDOPTS": ""}  # fmt: skip
    platform = LocalPlatform(url, state_dir=root / "state")
    figures: dict[str, list[float]] = {
        "deploy": [], "warm": [], "warm_session": [], "cold": [], "ready": [], "scrape": [],
    }  # fmt: skip
    try:
        for index in range(args.runs):
            started = time.perf_counter()
            platform.deploy(f"1.0.{index}")
            figures["deploy"].append(time.perf_counter() - started)
            ready, scraped = prometheus_start(platform, url, root / f"prom-{index}")
            figures["ready"].append(ready)
            figures["scrape"].append(scraped)
            elapsed, session, verdict = suite_run(env, root / f"warm-{index}")
            assert verdict["targets"]["local"]["gate"] == "passed", verdict
            figures["warm"].append(elapsed)
            figures["warm_session"].append(session)
            platform.stop()
            elapsed, _, verdict = suite_run(env, root / f"cold-{index}")
            assert verdict["targets"]["local"]["gate"] == "passed", verdict
            figures["cold"].append(elapsed)
    finally:
        platform.stop()

    load = os.getloadavg()[0]
    print(f"monitoring suite, {args.runs} runs, {os.cpu_count()} cores, load {load:.1f}")
    print("| what | median | range | note |")
    print("| --- | --- | --- | --- |")
    print(row("monitoring suite, release deployed (wall clock)", figures["warm"],
              f"target < {TARGET_S:.0f} s; pytest start-up included"))  # fmt: skip
    print(row("  of which the pytest session", figures["warm_session"], "pytest's own figure"))
    print(row("monitoring suite, nothing deployed (wall clock)", figures["cold"],
              "deploys, validates, stops"))  # fmt: skip
    print(row("local Prometheus: start -> ready", figures["ready"], ""))
    print(row("local Prometheus: start -> first scrape", figures["scrape"],
              "service discovery syncs every 5 s"))  # fmt: skip
    print(row("deploy a release (with the Sentry stand-in)", figures["deploy"], ""))


if __name__ == "__main__":
    main()
