"""The reports of a real validation of the local reference app: no secret anywhere, every
failure explained, and an HTML report whose numbers are the run's, with history carried over.

One run of the core suites against a release carrying ``progress_not_persisted``, with two
recognizable secrets the run can see: the password of credentials in the target's URL
(``https://user:SECRET@host``) and a notification webhook URL held in the environment
(``[targets.local.notify] webhook_url_env``, delivered to a closed loopback port).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from postdeploy.reporting import html as htmlreport
from tests.conftest import REPO, SUITE_RUN_TIMEOUT_S, free_port

CORE = ("suites/functional", "suites/monitoring/test_health.py")
URL_PASSWORD = "pdSelfTestUrlSecret5a1f"
WEBHOOK_SECRET = "pdSelfTestHookSecret9c3e"
SECRETS = (URL_PASSWORD, WEBHOOK_SECRET)
#: Credential shapes that must only ever appear redacted.
UNREDACTED = (
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\."),  # a JWT (the app's tokens)
    re.compile(r'"password"\s*:\s*"(?!\[REDACTED\])'),
    re.compile(r"(?i)\bbearer\s+(?!\[REDACTED\])[A-Za-z0-9]"),
    re.compile(r"(?i)la_session=(?!\[REDACTED\])[A-Za-z0-9]"),
)


@pytest.fixture(scope="module")
def run(local_env) -> dict:
    local_env.platform.deploy("1.0.0")
    local_env.platform.deploy("1.1.0", ["progress_not_persisted"])
    reports = local_env.reports_root / "secrets"
    env = {
        **local_env.env,
        "POSTDEPLOY_LOCAL_URL": f"https://pd-user:{URL_PASSWORD}@127.0.0.1:{local_env.port}",
        "POSTDEPLOY_LOCAL_NOTIFY_WEBHOOK_URL_ENV": "PD_SELFTEST_WEBHOOK",
        "PD_SELFTEST_WEBHOOK": f"http://127.0.0.1:{free_port()}/hooks/{WEBHOOK_SECRET}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *CORE, "--target", "local", "--reports-dir",
         str(reports), "--rollback", "dry-run", "--expect-version", "1.1.0",
         "-p", "no:cacheprovider", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=SUITE_RUN_TIMEOUT_S,
        check=False,
    )  # fmt: skip
    verdict = json.loads((reports / "verdict.json").read_text())
    results = {}
    for path in (reports / "allure-results").glob("*-result.json"):
        data = json.loads(path.read_text())
        results.setdefault(data["name"], []).append(data)
    return {"reports": reports, "done": done, "verdict": verdict, "results": results}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _leaks(texts: dict[str, str]) -> list[str]:
    found = []
    for name, text in texts.items():
        found += [f"{secret} in {name}" for secret in SECRETS if secret in text]
        found += [f"{p.pattern} in {name}" for p in UNREDACTED if p.search(text)]
    return found


def test_no_secret_reaches_any_report_or_output(run) -> None:
    reports = run["reports"]
    files = [
        *_files(reports / "allure-results"),
        reports / "verdict.json",
        reports / "junit.xml",
    ]
    assert len(files) > 50, "the run should have left results and attachments"
    assert run["verdict"]["targets"]["local"]["notifications"], "the webhook was tried"
    texts = {str(p): p.read_bytes().decode("utf-8", "replace") for p in files}
    texts["pytest output"] = run["done"].stdout + run["done"].stderr
    assert _leaks(texts) == []


def test_no_secret_reaches_the_rollback_audit_log(run) -> None:
    audit = run["reports"] / "rollback-audit.jsonl"
    assert _leaks({str(audit): audit.read_text()}) == []


def test_every_failure_is_explained_and_carries_the_http_exchange(run) -> None:
    local = run["verdict"]["targets"]["local"]
    assert local["gate"] == "failed"
    failing = [
        result
        for attempts in run["results"].values()
        for result in attempts
        if result["status"] in ("failed", "broken")
    ]
    assert len(failing) == local["counts"]["failed"] + local["counts"]["broken"] > 0
    for result in failing:
        names = {a["name"] for a in result.get("attachments", [])}
        assert "What failed" in names, result["name"]
        assert "HTTP exchanges (credentials redacted)" in names, result["name"]


def test_every_check_carries_epic_feature_severity_and_target(run) -> None:
    features = set()
    for attempts in run["results"].values():
        for result in attempts:
            labels = {label["name"]: label["value"] for label in result["labels"]}
            assert labels["epic"] in ("functional", "monitoring"), result["name"]
            assert labels["target"] == "local"
            assert labels["severity"] in ("blocker", "normal")
            features.add(labels["feature"])
    assert {"Authentication", "Health checks", "User registration", "API endpoints"} <= features


def test_the_environment_names_target_platform_url_and_versions(run) -> None:
    text = (run["reports"] / "allure-results" / "environment.properties").read_text()
    properties = dict(line.split("=", 1) for line in text.splitlines())
    assert properties["local.platform"] == "local"
    assert properties["local.url"].startswith("https://[REDACTED]@127.0.0.1:")
    assert properties["local.serving_version"] == "1.1.0"
    assert properties["expected_version"] == "1.1.0"
    assert properties["local.rollback"] == "dry-run"
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", properties["git_commit"])


def test_the_verdict_validates_against_its_schema(run) -> None:
    schema = json.loads((REPO / "schemas" / "verdict.schema.json").read_text())
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(run["verdict"])


def test_the_html_report_shows_the_runs_numbers_and_keeps_history(run, tmp_path) -> None:
    results = run["reports"] / "allure-results"
    history = tmp_path / "allure-history.jsonl"
    first = htmlreport.build(results, tmp_path / "report", history, rootdir=REPO)
    counts = run["verdict"]["targets"]["local"]["counts"]
    summary = json.loads((tmp_path / "report" / htmlreport.SUMMARY_FILE).read_text())["stats"]
    assert summary["total"] == sum(counts.values())
    for outcome in ("passed", "failed", "broken", "skipped"):
        assert summary.get(outcome, 0) == counts[outcome], outcome
    assert first.stats == summary
    assert len(history.read_text().splitlines()) == 1
    # the next build reads the history (no test is new any more) and extends it
    second = htmlreport.build(results, tmp_path / "report", history, rootdir=REPO)
    assert len(history.read_text().splitlines()) == 2
    assert "new" not in second.stats
    for path in _files(tmp_path / "report"):
        text = path.read_bytes().decode("utf-8", "replace")
        assert not any(secret in text for secret in SECRETS), path
