"""Figures of the canary judge's page metrics on the production shape, instance against instance.

A private ``local-prod`` (ports from 19740; its own state dir) deploys 1.0.0, then a canary
1.1.0 on instance 1 (``--canary 1``): instance 2 keeps 1.0.0. Each run loads every key page
``--loads`` times per arm in Chromium through the edge (each arm's instance addressed by its
routing header) and judges the page metrics alone with the default criteria:

* a healthy canary ``--runs`` times: how many runs pass (false alarms), and the time per run;
* the canary with ``slow_lcp``, ``layout_shift`` and ``slow_interaction`` once: what regressed.

Usage: ``python benchmarks/bench_canary_pages.py [--runs 5] [--loads 10]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from postdeploy.config import load_targets
from postdeploy.performance.canary import instance_arms
from postdeploy.performance.canary_pages import PagePlan, collect_pages, paired_pages
from postdeploy.performance.judge import Criteria, Result, judge
from postdeploy.rollback.local import LocalDriver

REPO = Path(__file__).resolve().parents[1]
TARGET = "local-prod"
#: The edge, the instances' base, Prometheus and Alertmanager of this benchmark.
EDGE_PORT, PORT_BASE, PROMETHEUS_PORT, ALERTMANAGER_PORT = 19740, 19750, 19770, 19771
PAGE_FAULTS = ["slow_lcp", "layout_shift", "slow_interaction"]
PAGES = ("landing", "login", "dashboard", "lesson")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="healthy canary runs")
    parser.add_argument("--loads", type=int, default=10, help="loads of each page per arm")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-pages-", dir="/tmp"))
    root.chmod(0o755)  # PostgreSQL runs as nobody when this runs as root
    environ = {
        **os.environ,
        "POSTDEPLOY_LOCAL_PROD_URL": f"https://127.0.0.1:{EDGE_PORT}",
        "POSTDEPLOY_LOCAL_PROD_PORT_BASE": str(PORT_BASE),
        "POSTDEPLOY_LOCAL_PROD_MONITORING_PROMETHEUS_URL": f"http://127.0.0.1:{PROMETHEUS_PORT}",
        "POSTDEPLOY_LOCAL_PROD_MONITORING_ALERTMANAGER_URL": (
            f"http://127.0.0.1:{ALERTMANAGER_PORT}"
        ),
    }
    target = load_targets(REPO / "targets.toml", environ=environ).targets[TARGET]
    os.environ["POSTDEPLOY_STATE_DIR"] = str(root / "state")
    driver = LocalDriver(target)
    platform = driver.local
    target = dataclasses.replace(target, ca_file=str(platform.ca_file))
    plan = PagePlan(PAGES, args.loads)
    try:
        platform.deploy("1.0.0")
        with sync_playwright() as playwright:
            for label, faults, runs in (("healthy", [], args.runs), ("faulted", PAGE_FAULTS, 1)):
                platform.deploy("1.0.0")
                platform.deploy("1.1.0", faults, canary=1)
                arms = instance_arms(target, driver.instances())
                passed, took = 0, []
                for _ in range(runs):
                    started = time.monotonic()
                    pages = paired_pages(collect_pages(playwright, target, arms, plan, "benchpg"))
                    judgement = judge({}, Criteria(), pages)
                    took.append(time.monotonic() - started)
                    passed += judgement.result is Result.PASS
                    if judgement.result is not Result.PASS:
                        print(f"   {label} {judgement.result}: {judgement.reason}")
                        print("   " + "\n   ".join(judgement.lines()))
                loads = len(PAGES) * args.loads * 2
                print(
                    f"{label} canary: {passed}/{runs} passed, {len(PAGES)} pages x {args.loads} "
                    f"loads x 2 arms; {sum(took) / runs:.0f} s per run "
                    f"({sum(took) / runs / loads:.2f} s per load)"
                )
    finally:
        platform.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
