"""Allure results enriched for stakeholders, and the HTML report built from them.

The three kinds of failure land in separate Allure categories (product defect, target
unreachable, harness broken); every check carries epic/feature/severity/target labels; the
report files say where, what and by whom; and ``postdeploy report`` fails with an install
hint, not a traceback, when Node.js or the Allure command line is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from postdeploy.reporting import html as htmlreport
from postdeploy.reporting.allure_files import CATEGORIES, environment_properties, executor
from tests.test_quarantine import health_standin, make_project, run_project

REPO = Path(__file__).resolve().parents[1]

TARGETS = """
[targets.alpha]
platform = "render"
url = "{url}"
service_id = "srv-alpha"

[targets.beta]
platform = "render"
url = "http://127.0.0.1:9"
service_id = "srv-beta"
"""

CHECKS = '''"""Functional testing - Widget delivery: every widget arrives."""

import pytest


@pytest.mark.gating
def test_widgets_arrive(target):
    pass


def test_widget_count_is_right(target):
    assert 2 + 2 == 5, "expected 5 widgets, the target delivered 4"


def test_harness_reads_its_config(target):
    raise KeyError("a bug in the harness")
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str], dict[str, dict]]:
    """alpha answers (one pass, one product defect, one harness bug); beta is unreachable."""
    root = tmp_path_factory.mktemp("allure")
    with health_standin() as url:
        make_project(root, TARGETS.format(url=url), {"functional/test_widgets.py": CHECKS})
        done = run_project(root, "--target", "all", "--notify", "off")
    found = {}
    for path in (root / "reports" / "allure-results").glob("*-result.json"):
        data = json.loads(path.read_text())
        found[data["name"]] = data
    return root, done, found


def labels(result: dict) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for label in result["labels"]:
        table.setdefault(label["name"], []).append(label["value"])
    return table


def attachment_names(result: dict) -> set[str]:
    return {a["name"] for a in result.get("attachments", [])}


def test_every_check_is_labelled_epic_feature_severity_and_target(run) -> None:
    _, _, found = run
    assert len(found) == 6
    for name, result in found.items():
        table = labels(result)
        assert table["epic"] == ["functional"], name
        assert table["feature"] == ["Widget delivery"], name
        assert table["target"] == [name.split("[")[1].rstrip("]")], name
        assert table["severity"] == ["blocker" if "arrive" in name else "normal"], name


def test_statuses_follow_the_gate_and_the_categories_tell_the_three_kinds_apart(run) -> None:
    _, _, found = run
    assert found["test_widgets_arrive[alpha]"]["status"] == "passed"
    assert found["test_widget_count_is_right[alpha]"]["status"] == "failed"
    assert found["test_harness_reads_its_config[alpha]"]["status"] == "broken"
    # unreachable is a product failure for the gate, so Allure shows it failed, not broken
    for name in ("test_widgets_arrive[beta]", "test_harness_reads_its_config[beta]"):
        assert found[name]["status"] == "failed"
        assert "is unreachable at" in found[name]["statusDetails"]["message"]

    def category(result: dict) -> str:
        message = (result.get("statusDetails") or {}).get("message", "")
        for rule in CATEGORIES:
            if result["status"] in rule["matchedStatuses"] and re.fullmatch(
                rule.get("messageRegex", "[\\s\\S]*"), message
            ):
                return rule["name"]
        return "none"

    assert category(found["test_widget_count_is_right[alpha]"]) == "Product defects"
    assert category(found["test_harness_reads_its_config[alpha]"]) == "Harness broken"
    assert category(found["test_widgets_arrive[beta]"]) == "Target unreachable"


def test_every_failure_has_a_what_failed_page(run) -> None:
    _, _, found = run
    failing = [r for r in found.values() if r["status"] in ("failed", "broken")]
    assert len(failing) == 5
    for result in failing:
        assert "What failed" in attachment_names(result), result["name"]
    root, _, _ = run
    results = root / "reports" / "allure-results"
    defect = found["test_widget_count_is_right[alpha]"]
    source = next(a["source"] for a in defect["attachments"] if a["name"] == "What failed")
    page = (results / source).read_text()
    assert "checklist item:  Widget delivery" in page
    assert "failed: a product defect" in page
    assert "expected 5 widgets, the target delivered 4" in page
    assert 'reproduce: pytest "suites/functional/test_widgets.py::' in page


def test_the_run_writes_environment_executor_and_categories(run) -> None:
    root, _, _ = run
    results = root / "reports" / "allure-results"
    properties = dict(
        line.split("=", 1) for line in (results / "environment.properties").read_text().splitlines()
    )
    assert properties["targets"] == "alpha, beta"
    assert properties["alpha.platform"] == "render"
    assert properties["alpha.url"].startswith("http://127.0.0.1:")
    assert properties["alpha.serving_version"] == "9.9.9"
    assert properties["beta.gate"] == "failed"
    assert properties["expected_version"] == "not given"
    assert "git_commit" in properties
    assert json.loads((results / "executor.json").read_text())["reportName"] == "postdeploy"
    assert json.loads((results / "categories.json").read_text()) == CATEGORIES


def test_each_run_starts_from_empty_results(run, tmp_path) -> None:
    root = shutil.copytree(run[0], tmp_path / "again")
    run_project(root, "--target", "alpha", "--notify", "off")
    assert len(list((root / "reports" / "allure-results").glob("*-result.json"))) == 3


def test_the_html_report_puts_each_failure_in_its_category(run, tmp_path) -> None:
    reports = run[0] / "reports"
    built = htmlreport.build(
        reports / "allure-results", tmp_path / "report", tmp_path / "history.jsonl", rootdir=REPO
    )
    assert built.stats["total"] == 6
    tree = json.loads((tmp_path / "report" / "widgets" / "categories.json").read_text())
    categories = {
        n["name"]: n["statistic"] for n in tree["nodes"].values() if n["type"] == "category"
    }
    assert categories == {
        "Target unreachable": {"total": 3, "failed": 3},
        "Product defects": {"total": 1, "failed": 1},
        "Harness broken": {"total": 1, "broken": 1},
    }
    # one Allure environment per target
    environments = json.loads((tmp_path / "report" / "widgets" / "environments.json").read_text())
    assert {"alpha", "beta"} <= {e["id"] for e in environments}


# -- units ----------------------------------------------------------------------------------


def test_executor_names_the_ci_build() -> None:
    github = executor("r1", {
        "GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "42", "GITHUB_RUN_NUMBER": "7",
        "GITHUB_WORKFLOW": "postdeploy gate", "POSTDEPLOY_REPORT_URL": "https://r.example/7/",
    })  # fmt: skip
    assert github == {
        "name": "GitHub Actions", "type": "github", "url": "https://github.com/acme/app",
        "buildOrder": 7, "buildName": "postdeploy gate #7 (run r1)",
        "buildUrl": "https://github.com/acme/app/actions/runs/42", "reportName": "postdeploy",
        "reportUrl": "https://r.example/7/",
    }  # fmt: skip
    gitlab = executor("r1", {"GITLAB_CI": "true", "CI_JOB_URL": "https://gl.example/j/9",
                             "CI_PIPELINE_IID": "3", "CI_JOB_NAME": "nightly"})  # fmt: skip
    assert (gitlab["type"], gitlab["buildUrl"], gitlab["buildOrder"]) == (
        "gitlab",
        "https://gl.example/j/9",
        3,
    )
    assert (
        executor("r1", {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "pd-123"})["buildName"]
        == "pd-123 (run r1)"
    )
    assert executor("r1", {})["type"] == "local"


def test_environment_properties_escape_and_hide_credentials(monkeypatch) -> None:
    from postdeploy.config import Target
    from postdeploy.settings import RunSettings

    target = Target("fly", "fly", "https://user:pa55word-long@app.example")
    settings = RunSettings(
        run_id="r1", targets={"fly": target}, targets_file=Path("t.toml"), rollback="auto",
        expect_version="1.4.2\nx=y", reports_dir=Path("reports"), rootdir=REPO,
    )  # fmt: skip
    text = environment_properties(settings, {"targets": {}}, "abc123")
    assert "pa55word-long" not in text
    assert "expected_version=1.4.2\\nx=y\n" in text
    assert "fly.url=https://[REDACTED]@app.example\n" in text


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postdeploy.cli", "report", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_report_without_node_fails_with_an_install_hint(run) -> None:
    reports = run[0] / "reports"
    env = {**os.environ, "PATH": str(Path(sys.executable).parent / "no-such-dir")}
    env.pop(htmlreport.ALLURE_ENV, None)
    done = _cli("--reports-dir", str(reports), "--output", str(reports / "html"), env=env)
    assert done.returncode == 1
    assert "Node.js is not installed" in done.stderr
    assert "npm install" in done.stderr
    assert "Traceback" not in done.stderr


def test_report_without_results_says_to_run_a_validation_first(tmp_path) -> None:
    done = _cli("--reports-dir", str(tmp_path), env=dict(os.environ))
    assert done.returncode == 1
    assert "no Allure results in" in done.stderr
    assert "run a validation first" in done.stderr


def test_report_refuses_to_wipe_a_directory_that_is_not_a_report(run, tmp_path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(htmlreport.ReportError, match="holds no Allure report"):
        htmlreport.build(
            run[0] / "reports" / "allure-results", tmp_path, tmp_path / "h.jsonl",
            rootdir=REPO,
        )  # fmt: skip
    assert (tmp_path / "precious.txt").exists()
