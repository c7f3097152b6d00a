"""Defects a new user hit (issue 10): an unreachable target's wall of tracebacks, and a path
option written with a space that moves pytest's rootdir out of the project."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from postdeploy.config import find_targets_file
from postdeploy.rootdir import misread_option, rootdir_problem
from tests.terminal_output import body

REPO = Path(__file__).resolve().parents[1]
#: The issue's bar: the whole default run against an unreachable target, in lines of output.
MAX_UNREACHABLE_LINES = 60
RUN_TIMEOUT_S = 180

TARGETS = """
[targets.alpha]
platform = "render"
url = "{url}"
service_id = "srv-alpha"

[targets.beta]
platform = "render"
url = "{url}"
service_id = "srv-beta"
"""
CHECKS = """import pytest

@pytest.mark.gating
def test_gate(target):
    pass

def test_two(target):
    pass

def test_three(target):
    pass
"""


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A loopback URL that refuses connections: the port is bound, never listened on."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"https://127.0.0.1:{bound.getsockname()[1]}"


def _run(*args: str, cwd: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POSTDEPLOY_STATE_DIR": str(state), "PYTEST_ADDOPTS": ""}
    env.pop("POSTDEPLOY_TARGET", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip


# -- an unreachable target: the reason once ------------------------------------------------


def test_an_unreachable_target_gives_its_reason_once_in_the_default_run(closed_url, tmp_path):
    reports = tmp_path / "reports"
    done = _run(
        "--target", "fly", f"--base-url={closed_url}", f"--reports-dir={reports}",
        cwd=REPO, state=tmp_path / "state",
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    lines = output.splitlines()
    assert len(lines) < MAX_UNREACHABLE_LINES, output
    assert body(output).count(f"is unreachable at {closed_url}") == 1, output
    assert "Traceback" not in output, output
    assert "fixtures.py" not in output, output
    # ... and every test is still a failed test in junit.xml and the verdict
    cases = list(ET.parse(reports / "junit.xml").getroot().iter("testcase"))
    errors = [case.find("error") for case in cases]
    assert cases
    assert all(error is not None and closed_url in (error.text or "") for error in errors)
    summary = re.search(r"1 error, (\d+) unreachable", lines[-1])
    assert summary is not None, lines[-1]
    assert int(summary[1]) == len(cases) - 1, lines[-1]
    verdict = json.loads((reports / "verdict.json").read_text())["targets"]["fly"]
    assert verdict["gate"] == "failed"
    assert verdict["counts"]["failed"] == len(cases) == len(verdict["failures"])


def test_each_unreachable_target_is_reported_once(pytester, closed_url):
    pytester.makefile(".toml", targets=TARGETS.format(url=closed_url))
    folder = pytester.path / "suites" / "functional"
    folder.mkdir(parents=True)
    (folder / "test_checks.py").write_text(CHECKS)
    result = pytester.runpytest_subprocess("suites", "--target", "alpha,beta", "-n", "2")
    assert result.ret == 1
    output = result.stdout.str()
    assert result.parseoutcomes() == {"errors": 2, "unreachable": 4}, output
    for name in ("alpha", "beta"):
        assert body(output).count(f"target '{name}' is unreachable at {closed_url}") == 1, output
        assert f"{name} unreachable: 2 more test(s) failed" in output, output
    data = json.loads((pytester.path / "reports" / "verdict.json").read_text())["targets"]
    assert {name: t["counts"]["failed"] for name, t in data.items()} == {"alpha": 3, "beta": 3}


# -- a path option written with a space ----------------------------------------------------


@pytest.fixture
def project(pytester, closed_url):
    """A project as a user has it: pyproject's testpaths, targets.toml, suites/ and tests/
    (whose test must never run against a target)."""
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\ntestpaths = ["suites"]\naddopts = "-p no:cacheprovider"\n'
    )
    pytester.makefile(".toml", targets=TARGETS.format(url=closed_url))
    suites = pytester.path / "suites" / "functional"
    suites.mkdir(parents=True)
    (suites / "test_checks.py").write_text("def test_collected():\n    pass\n")
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_self.py").write_text("def test_self():\n    pass\n")
    return pytester


@pytest.fixture
def elsewhere(tmp_path_factory) -> Path:
    """An existing folder outside the project."""
    return tmp_path_factory.mktemp("elsewhere")


def test_a_space_separated_reports_dir_outside_the_project_is_a_clear_error(project, elsewhere):
    result = project.runpytest_subprocess("--target", "alpha", "--reports-dir", str(elsewhere))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*because it read '--reports-dir {elsewhere}' as a path*"
         f"write --reports-dir={elsewhere}"]
    )  # fmt: skip
    assert "test_self" not in result.stdout.str()


def test_a_space_separated_targets_file_outside_the_project_is_a_clear_error(project, elsewhere):
    shutil.copy(project.path / "targets.toml", elsewhere / "targets.toml")
    given = elsewhere / "targets.toml"
    result = project.runpytest_subprocess("--targets-file", str(given), "--target", "alpha")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*'--targets-file {given}'*write --targets-file={given}"])


def test_path_options_written_with_equals_keep_the_project(project, elsewhere):
    shutil.copy(project.path / "targets.toml", elsewhere / "targets.toml")
    result = project.runpytest_subprocess(
        f"--targets-file={elsewhere / 'targets.toml'}", f"--reports-dir={elsewhere}",
        "--target", "alpha", "--collect-only", "-q",
    )  # fmt: skip
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["suites/functional/test_checks.py::test_collected", "1 test*"])


def test_the_targets_file_is_found_from_a_subfolder(project, monkeypatch):
    monkeypatch.chdir(project.path / "suites" / "functional")
    result = project.runpytest_subprocess("--target", "beta", "--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_checks.py::test_collected*"])


def test_find_targets_file_looks_upward_and_can_find_none(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_targets_file(tmp_path / "a" / "b") is None or not str(
        find_targets_file(tmp_path / "a" / "b")
    ).startswith(str(tmp_path))
    (tmp_path / "targets.toml").write_text("")
    assert find_targets_file(tmp_path / "a" / "b") == (tmp_path / "targets.toml").resolve()


def test_the_real_project_stops_on_a_misread_reports_dir(tmp_path):
    outside = tmp_path / "reports"
    outside.mkdir()
    done = _run(
        "--target", "fly", "--reports-dir", str(outside), "--collect-only",
        cwd=REPO, state=tmp_path / "state",
    )  # fmt: skip
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert f"write --reports-dir={outside}" in done.stderr
    assert "tests/" not in done.stdout  # nothing was collected, the self-tests least of all


def test_the_real_project_runs_from_a_subfolder(tmp_path):
    done = _run(
        "--target", "fly", "--collect-only", "-q", f"--reports-dir={tmp_path / 'reports'}",
        cwd=REPO / "suites" / "monitoring", state=tmp_path / "state",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_health.py::" in done.stdout


def test_listing_the_checks_deploys_nothing_and_keeps_the_last_reports(tmp_path):
    """--collect-only lists the checks: no local deployment, and the last run's verdict,
    Allure results and JUnit XML stay as they were."""
    reports, state = tmp_path / "reports", tmp_path / "state"
    (reports / "allure-results").mkdir(parents=True)
    kept = {reports / "verdict.json": "{}", reports / "allure-results" / "x-result.json": "{}"}
    for path, text in kept.items():
        path.write_text(text)
    done = _run(
        "--target", "local", "--collect-only", "-q", f"--reports-dir={reports}",
        cwd=REPO, state=state,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "test_health.py::" in done.stdout
    assert not state.exists(), sorted(p.name for p in state.iterdir())
    assert all(path.read_text() == text for path, text in kept.items())
    assert not (reports / "junit.xml").exists()


# -- the rule, unit by unit ----------------------------------------------------------------


def test_rootdir_problem_is_none_when_rootdir_is_the_project(tmp_path):
    (tmp_path / "targets.toml").write_text("")
    found = tmp_path / "targets.toml"
    args = ["--target", "x"]
    assert (
        rootdir_problem(rootdir=tmp_path, found=found, args=args, invocation_dir=tmp_path) is None
    )


def test_rootdir_problem_names_the_cause_without_a_misread_option(tmp_path):
    project, other = tmp_path / "project", tmp_path / "other"
    project.mkdir()
    other.mkdir()
    message = rootdir_problem(
        rootdir=other, found=project / "targets.toml", args=[str(other / "suites")],
        invocation_dir=project,
    )  # fmt: skip
    assert message is not None
    assert f"rootdir is {other.resolve()}" in message
    assert "--targets-file=PATH" in message


def test_a_path_to_test_inside_the_rootdir_explains_it(tmp_path):
    project, here = tmp_path / "project", tmp_path / "here"
    (project / "suites").mkdir(parents=True)
    here.mkdir()
    args = [str(project / "suites"), "--targets-file", str(project / "t.toml")]
    (project / "t.toml").write_text("")
    tested = [str(project / "suites")]
    explained = rootdir_problem(
        rootdir=project, found=None, args=args, invocation_dir=here, test_paths=tested
    )
    assert explained is None
    # without the path to test, the targets file's folder became the rootdir: misread
    message = rootdir_problem(rootdir=project, found=None, args=args[1:], invocation_dir=here)
    assert message is not None
    assert f"write --targets-file={project / 't.toml'}" in message


def test_a_value_that_cannot_be_a_path_is_not_a_misread_option(tmp_path):
    # `-k EXPR` with a long expression: checking it as a path must not crash the run
    args = ["-k", "x" * 5000, "--target", "local"]
    assert misread_option(args, tmp_path, tmp_path) is None
