"""--quarantine and reruns: quarantined checks run and are reported but never gate, and a check
that fails then passes on a rerun is reported as flaky - in verdict.json, the terminal summary,
junit and Allure - never hidden."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from postdeploy.quarantine import Quarantine, QuarantineError
from tests.conftest import _HealthHandler

#: Installed pytest plugins these projects do not use; not loading them saves seconds a run.
UNUSED_PLUGINS = "-p no:schemathesis -p no:hypothesispytest -p no:locust"
PROJECT_RUN_TIMEOUT_S = 180


@contextlib.contextmanager
def health_standin() -> Iterator[str]:
    """The conftest's health stand-in, for module-scoped fixtures (``health_server`` is
    function-scoped)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    server.status = 200  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_project(root: Path, targets: str, suites: dict[str, str]) -> Path:
    """A validation project: targets.toml, pytest.ini and suites/<path> files."""
    (root / "targets.toml").write_text(targets)
    (root / "pytest.ini").write_text(
        f"[pytest]\naddopts = --strict-markers -p no:cacheprovider {UNUSED_PLUGINS}\n"
    )
    for relative, source in suites.items():
        path = root / "suites" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


def run_project(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pytest suites ARGS`` in ``root``, with its own state dir (rollback ledger)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites", *args],
        cwd=root, capture_output=True, text=True, timeout=PROJECT_RUN_TIMEOUT_S, check=False,
        env={**os.environ, "POSTDEPLOY_STATE_DIR": str(root / "state"), "PYTEST_ADDOPTS": ""},
    )  # fmt: skip


TARGETS = """
[targets.alpha]
platform = "render"
url = "{url}"
service_id = "srv-alpha"
"""

#: Checks that fail on their first attempt and pass on the next (a counter file per check).
FLAKY = """
import pathlib

import pytest


def attempt(name):
    counter = pathlib.Path(__file__).with_name(name + ".count")
    number = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(number))
    return number


@pytest.mark.gating
def test_sometimes(target):
    number = attempt("sometimes")
    assert number > 1, f"attempt {number}: the target answered 502 this time"


def test_now_and_then(target):
    assert attempt("now_and_then") > 1, "first attempt fails"
"""

SOLID = """
import pytest


@pytest.mark.gating
def test_health(target):
    assert True


@pytest.mark.gating
def test_always_broken_check(target):
    assert False, "this check fails every time"
"""

QUARANTINE = (
    "test_always_broken_check   # known flaky, issue 7\ntest_sometimes\ntest_gone_long_ago\n"
)


@dataclass
class Run:
    root: Path
    done: subprocess.CompletedProcess[str]

    @property
    def alpha(self) -> dict:
        return self.verdict["targets"]["alpha"]

    @property
    def verdict(self) -> dict:
        return json.loads((self.root / "reports" / "verdict.json").read_text())

    def allure_results(self) -> list[dict]:
        folder = self.root / "reports" / "allure-results"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*-result.json"))]

    def junit_cases(self) -> dict[str, ET.Element]:
        tree = ET.parse(self.root / "reports" / "junit.xml").getroot()
        return {case.get("name"): case for case in tree.iter("testcase")}


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    with health_standin() as url:
        yield url


def _run(tmp_path_factory, url: str, *args: str, quarantine: bool = False) -> Run:
    root = tmp_path_factory.mktemp("quarantine")
    make_project(
        root, TARGETS.format(url=url),
        {"functional/test_flaky.py": FLAKY, "functional/test_solid.py": SOLID},
    )  # fmt: skip
    if quarantine:
        (root / "quarantine.txt").write_text(QUARANTINE)
        args = (*args, "--quarantine", "quarantine.txt")
    return Run(root, run_project(root, "--target", "alpha", "--notify", "off", *args))


@pytest.fixture(scope="module")
def quarantined(tmp_path_factory, standin) -> Run:
    """With the quarantine file, without --rerun."""
    return _run(tmp_path_factory, standin, quarantine=True)


@pytest.fixture(scope="module")
def rerun(tmp_path_factory, standin) -> Run:
    """--rerun 2 for every check, no quarantine."""
    return _run(tmp_path_factory, standin, "--rerun", "2")


# -- the file -------------------------------------------------------------------------------


class FakeItem:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.name = nodeid.rsplit("::", 1)[1]
        self.originalname = self.name.split("[", 1)[0]


def test_entries_are_node_ids_names_or_patterns_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.txt"
    path.write_text(
        "# checks known to be flaky\n\n"
        "suites/performance/test_load.py::test_p95   # noisy on the free tier, issue 42\n"
        "test_health_check_pass_rate[render]\n"
        "suites/security/*::test_tls_*\n"
    )
    quarantine = Quarantine.load(path)
    assert [(e.pattern, e.reason, e.line) for e in quarantine.entries] == [
        ("suites/performance/test_load.py::test_p95", "noisy on the free tier, issue 42", 3),
        ("test_health_check_pass_rate[render]", "", 4),
        ("suites/security/*::test_tls_*", "", 5),
    ]
    hit = quarantine.entry_for
    assert hit(FakeItem("suites/performance/test_load.py::test_p95[fly]")).line == 3
    assert hit(FakeItem("suites/monitoring/test_health.py::test_health_check_pass_rate[render]"))
    # brackets are literal, not a character class
    assert not hit(FakeItem("suites/monitoring/test_health.py::test_health_check_pass_rate[r]"))
    assert hit(FakeItem("suites/security/test_tls.py::test_tls_versions[fly]")).line == 5
    assert not hit(FakeItem("suites/security/test_tls.py::test_headers[fly]"))
    assert [e.line for e in quarantine.unused()] == []


def test_an_entry_that_is_not_one_check_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "quarantine.txt"
    path.write_text("test_a test_b\n")
    with pytest.raises(QuarantineError, match="line 1: 'test_a test_b' is not one check"):
        Quarantine.load(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quarantine", "missing.txt"], "*--quarantine *missing.txt: file not found*"),
        (["--rerun", "-1"], "*--rerun -1: give 0 or a positive number*"),
    ],
    ids=["missing-file", "negative-rerun"],
)
def test_bad_options_are_usage_errors(tmp_path, args, message) -> None:
    make_project(tmp_path, TARGETS.format(url="http://127.0.0.1:9"), {"functional/t.py": SOLID})
    done = run_project(tmp_path, "--target", "alpha", *args)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert any(fnmatch(line, message) for line in done.stderr.splitlines()), done.stderr


# -- behaviour ------------------------------------------------------------------------------

ALWAYS = "suites/functional/test_solid.py::test_always_broken_check[alpha]"
SOMETIMES = "suites/functional/test_flaky.py::test_sometimes[alpha]"
NOW_AND_THEN = "suites/functional/test_flaky.py::test_now_and_then[alpha]"


def test_a_quarantined_check_runs_is_reported_and_does_not_gate(quarantined) -> None:
    alpha = quarantined.alpha
    # the only failing gating checks are quarantined: the gate passes on test_health
    assert alpha["gate"] == "passed", alpha["reason"]
    assert alpha["gating_counts"]["passed"] == 1
    assert {q["test"]: q["entry"] for q in alpha["quarantined"]} == {
        ALWAYS: "test_always_broken_check (known flaky, issue 7)",
        SOMETIMES: "test_sometimes",
    }
    assert {q["test"]: q["outcome"] for q in alpha["quarantined"]}[ALWAYS] == "failed"
    # it still fails visibly: in the failures, the counts and pytest's exit status
    assert [(f["test"], f["gating"]) for f in alpha["failures"]] == [
        (ALWAYS, False), (NOW_AND_THEN, False)
    ]  # fmt: skip
    assert quarantined.done.returncode == 1
    assert quarantined.verdict["quarantine"]["unused"] == ["test_gone_long_ago"]
    output = quarantined.done.stdout
    assert f"quarantined (reported, never gates): {ALWAYS} failed" in output
    assert "quarantine: test_gone_long_ago matched no collected check" in output
    # Allure: tagged quarantined and flagged known, on both attempts
    results = [r for r in quarantined.allure_results() if r["name"].startswith("test_always")]
    assert len(results) == 2
    for result in results:
        assert {"name": "tag", "value": "quarantined"} in result["labels"]
        assert result["statusDetails"]["known"] is True


def test_a_failing_quarantined_check_is_rerun_once_and_others_not_at_all(quarantined) -> None:
    reruns = {r["test"]: r for r in quarantined.alpha["reruns"]}
    assert set(reruns) == {ALWAYS, SOMETIMES}
    assert (reruns[ALWAYS]["attempts"], reruns[ALWAYS]["outcome"]) == (2, "failed")
    assert quarantined.alpha["flaky"] == [SOMETIMES]
    # not quarantined and no --rerun: its failure counts at once
    counter = quarantined.root / "suites" / "functional" / "now_and_then.count"
    assert counter.read_text() == "1"


def test_a_check_that_fails_then_passes_on_rerun_is_reported_flaky(quarantined) -> None:
    reruns = {r["test"]: r for r in quarantined.alpha["reruns"]}
    assert reruns[SOMETIMES] == {
        "test": SOMETIMES, "attempts": 2, "outcome": "passed", "gating": False,
        "quarantined": True,
        "first_failure": "AssertionError: attempt 1: the target answered 502 this time\n"
                         "assert 1 > 1",
    }  # fmt: skip
    assert f"alpha      flaky: {SOMETIMES} passed on attempt 2; first failure: " in (
        quarantined.done.stdout
    )
    # junit: one test case, passed, carrying the attempts
    case = quarantined.junit_cases()["test_sometimes[alpha]"]
    assert not list(case.iter("failure"))
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties["postdeploy_attempts"] == "2"
    assert "502" in properties["postdeploy_first_failure"]
    # Allure: the failed attempt is a retry of the passed one, which is marked flaky
    attempts = {
        r["status"]: r for r in quarantined.allure_results() if r["name"] == "test_sometimes[alpha]"
    }
    assert sorted(attempts) == ["failed", "passed"]
    failed, passed = attempts["failed"], attempts["passed"]
    assert failed["historyId"] == passed["historyId"]
    assert failed["stop"] <= passed["start"], "the failed attempt ran first"
    assert passed["statusDetails"]["flaky"] is True
    assert "502" in passed["statusDetails"]["message"]


def test_rerun_applies_to_every_check(rerun) -> None:
    alpha = rerun.alpha
    reruns = {r["test"]: (r["attempts"], r["outcome"], r["gating"]) for r in alpha["reruns"]}
    assert reruns == {
        SOMETIMES: (2, "passed", True),
        NOW_AND_THEN: (2, "passed", False),
        ALWAYS: (3, "failed", True),
    }
    assert alpha["flaky"] == sorted([SOMETIMES, NOW_AND_THEN])
    # failing on every attempt still fails the gate; the flaky gating check is named
    assert alpha["gate"] == "failed"
    assert rerun.done.returncode == 1


def test_a_flaky_gating_check_passes_the_gate_with_a_note(tmp_path_factory, standin) -> None:
    run = _run(tmp_path_factory, standin, "--rerun", "1", "-n", "2", "-k", "not always")
    alpha = run.alpha
    assert alpha["gate"] == "passed"
    assert "1 only on rerun: flaky" in alpha["reason"]
    # the reruns happened on xdist workers and still reached the verdict
    assert "2 workers" in run.done.stdout
    assert alpha["flaky"] == sorted([SOMETIMES, NOW_AND_THEN])
    assert run.done.returncode == 0
