"""Performance - Load testing: under the load profile, error rate < 0.1 % and p95 < 2 s.

Locust runs in separate processes (``postdeploy/performance/load.py``), never inside pytest.
The profile is
``--load-profile`` or the target's ``[load] profile``; ``--load-workers N`` runs Locust's
distributed mode (one master, N workers). The Locust HTML report, its CSVs and a per-endpoint
table are attached to the report.
"""

from __future__ import annotations

import warnings

import pytest

from postdeploy.performance.load import load_run, run_load
from postdeploy.reporting.attachments import attach_file, attach_json, attach_text
from postdeploy.users import CleanupWarning


def _attach(result) -> None:
    attach_text("load: per-endpoint figures", result.table())
    attach_json("load: run summary", result.summary)
    if result.html_report.exists():
        attach_file(result.html_report, "Locust report")
    for csv_file in result.csv_files():
        attach_file(csv_file)


@pytest.mark.gating
@pytest.mark.alone
@pytest.mark.load
@pytest.mark.slow
def test_under_load_the_error_rate_and_p95_stay_within_thresholds(target, pytestconfig, held_load):
    settings, out_dir = load_run(pytestconfig, target)
    result = run_load(settings, out_dir, held_load)
    _attach(result)
    if result.leftovers:
        warnings.warn(
            CleanupWarning(
                f"{len(result.leftovers)} synthetic load account(s) could not be deleted: "
                f"{', '.join(result.leftovers)}"
            ),
            stacklevel=1,
        )
    problems = result.violations()
    assert not problems, f"load profile {settings.profile} against {target.url}: " + "; ".join(
        problems
    )
