"""The files an Allure results directory gets next to the test results, and the scrub.

At the start of a run the controller empties the results directory (one run, one report;
history lives in the Allure 3 history file, see ``postdeploy.reporting.html``). At the end it
writes ``environment.properties`` (per target: platform, URL, serving version, gate,
rollback; the expected version, git commit, run id), ``executor.json`` (the CI system and a
link to the build when known) and ``categories.json`` (target unreachable, product defect,
harness broken, flaky), then scrubs every text file in the results, and junit.xml, with
``postdeploy.redact`` and the secret values this run can see - the last line of defence that
keeps secrets out of reports.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postdeploy.redact import redact_data, redact_text, redact_url
from postdeploy.reporting.verdict import scrub_data

if TYPE_CHECKING:
    from collections.abc import Mapping

    from postdeploy.settings import RunSettings

#: The text the target probe puts in an unreachable target's failure (postdeploy.fixtures).
UNREACHABLE_TEXT = "is unreachable at"

ENVIRONMENT_FILE = "environment.properties"
EXECUTOR_FILE = "executor.json"
CATEGORIES_FILE = "categories.json"

#: Allure categories (Allure 2 ``categories.json`` format; Allure 3 reads the same keys
#: from its config). The first that matches a test wins, so unreachable comes first.
CATEGORIES: list[dict[str, Any]] = [
    {
        "name": "Target unreachable",
        "description": "The deployment did not answer at all: down, wrong URL, DNS or TLS.",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": rf"[\s\S]*{UNREACHABLE_TEXT}[\s\S]*",
    },
    {
        "name": "Product defects",
        "description": "The deployment answered, and not as the check expects: the app is wrong.",
        "matchedStatuses": ["failed"],
    },
    {
        "name": "Harness broken",
        "description": "An exception inside postdeploy itself: the target was not judged.",
        "matchedStatuses": ["broken"],
    },
    {
        "name": "Flaky: failed, then passed on rerun",
        "description": "Passed only when rerun; see the retries of the test.",
        "matchedStatuses": ["passed"],
        "flaky": True,
    },
]

#: Text files in the results that are scrubbed; anything else (images, traces) is left alone.
TEXT_SUFFIXES = frozenset({".json", ".txt", ".log", ".properties", ".csv", ".html", ".xml"})
GIT_TIMEOUT_S = 5.0


# -- secrets ------------------------------------------------------------------------------


def _scrub_text(text: str, secrets: tuple[str, ...], is_json: bool) -> str | None:
    """The redacted text, or None when nothing in it needed redacting."""
    if is_json:
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            clean = scrub_data(redact_data(data), secrets)
            return None if clean == data else json.dumps(clean, ensure_ascii=False)
    clean_text = redact_text(text, secrets)
    return None if clean_text == text else clean_text


def scrub_results(results_dir: Path, secrets: tuple[str, ...]) -> int:
    """Redact every text file in ``results_dir`` in place; returns how many changed."""
    changed = 0
    if not results_dir.is_dir():
        return changed
    for path in results_dir.iterdir():
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        clean = _scrub_text(text, secrets, is_json=suffix == ".json")
        if clean is not None:
            path.write_text(clean, encoding="utf-8")
            changed += 1
    return changed


def scrub_junit(path: Path, secrets: tuple[str, ...]) -> bool:
    """Redact the text and attributes of a junit XML file in place; True when it changed."""
    if not path.is_file():
        return False
    try:
        tree = ET.parse(path)  # noqa: S314 - the junit.xml this run just wrote
    except (ET.ParseError, OSError):
        return False
    changed = False
    for element in tree.iter():
        for attr, value in element.attrib.items():
            clean = redact_text(value, secrets)
            if clean != value:
                element.set(attr, clean)
                changed = True
        for part in ("text", "tail"):
            value = getattr(element, part)
            if value:
                clean = redact_text(value, secrets)
                if clean != value:
                    setattr(element, part, clean)
                    changed = True
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return changed


# -- the files Allure reads next to the results ---------------------------------------------


def reset_results_dir(results_dir: Path) -> None:
    """Empty the results directory: one run, one report (history is kept elsewhere)."""
    if results_dir.is_dir():
        shutil.rmtree(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)


def git_commit(rootdir: Path) -> str:
    for name in ("POSTDEPLOY_GIT_COMMIT", "GITHUB_SHA", "CI_COMMIT_SHA"):
        if os.environ.get(name):
            return os.environ[name]
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        done = subprocess.run(
            [git, "-C", str(rootdir), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def _escape(text: str, key: bool = False) -> str:
    """Java properties escaping (what Allure parses): backslash, line breaks, and in keys
    the separators."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if key:
        for char in "=: ":
            text = text.replace(char, "\\" + char)
    return text


def environment_properties(settings: RunSettings, verdict: Mapping[str, Any], commit: str) -> str:
    """``environment.properties``: what was validated, where, and which release."""
    values: dict[str, str] = {
        "run_id": settings.run_id,
        "targets": ", ".join(settings.targets),
        "expected_version": settings.expect_version or "not given",
        "rollback_mode": settings.rollback,
        "git_commit": commit,
    }
    for name, target in settings.targets.items():
        entry = verdict.get("targets", {}).get(name, {})
        rollback = entry.get("rollback") or {}
        values[f"{name}.platform"] = target.platform
        values[f"{name}.url"] = redact_url(target.url)
        values[f"{name}.serving_version"] = entry.get("serving_version") or "unknown"
        values[f"{name}.gate"] = entry.get("gate", "unknown")
        values[f"{name}.rollback"] = rollback.get("status", "not-needed")
    return "".join(f"{_escape(k, key=True)}={_escape(redact_text(v))}\n" for k, v in values.items())


def executor(run_id: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``executor.json``: which CI (or machine) ran this, with a link to the build."""
    env = os.environ if env is None else env
    report_url = env.get("POSTDEPLOY_REPORT_URL", "")
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo = env.get("GITHUB_REPOSITORY", "")
        number = env.get("GITHUB_RUN_NUMBER", "")
        data: dict[str, Any] = {
            "name": "GitHub Actions",
            "type": "github",
            "url": f"{server}/{repo}",
            "buildOrder": int(number) if number.isdigit() else None,
            "buildName": f"{env.get('GITHUB_WORKFLOW', 'workflow')} #{number} (run {run_id})",
            "buildUrl": f"{server}/{repo}/actions/runs/{env.get('GITHUB_RUN_ID', '')}",
        }
    elif env.get("GITLAB_CI") == "true":
        number = env.get("CI_PIPELINE_IID", "")
        data = {
            "name": "GitLab CI",
            "type": "gitlab",
            "url": env.get("CI_PROJECT_URL", ""),
            "buildOrder": int(number) if number.isdigit() else None,
            "buildName": f"{env.get('CI_JOB_NAME', 'job')} #{number} (run {run_id})",
            "buildUrl": env.get("CI_JOB_URL", ""),
        }
    elif env.get("KUBERNETES_SERVICE_HOST"):
        data = {
            "name": "Kubernetes CronJob",
            "type": "kubernetes",
            "buildName": f"{env.get('HOSTNAME', 'pod')} (run {run_id})",
        }
    else:
        data = {
            "name": "CI" if env.get("CI") else "local",
            "type": "ci" if env.get("CI") else "local",
            "buildName": f"{socket.gethostname()} (run {run_id})",
        }
    data["reportName"] = "postdeploy"
    if report_url:
        data["reportUrl"] = report_url
    return {
        k: redact_text(v) if isinstance(v, str) else v for k, v in data.items() if v is not None
    }


def write_run_files(results_dir: Path, settings: RunSettings, verdict: Mapping[str, Any]) -> None:
    """Write the environment, executor and categories files and scrub the results."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / ENVIRONMENT_FILE).write_text(
        environment_properties(settings, verdict, git_commit(settings.rootdir)), encoding="utf-8"
    )
    (results_dir / EXECUTOR_FILE).write_text(
        json.dumps(executor(settings.run_id), indent=2) + "\n", encoding="utf-8"
    )
    (results_dir / CATEGORIES_FILE).write_text(
        json.dumps(CATEGORIES, indent=2) + "\n", encoding="utf-8"
    )
    scrub_results(results_dir, settings.secrets)
