"""Shared helpers of the self-tests.

``local_env`` gives a private local platform (its own state dir and port), and
``run_suites`` runs the real suites against it in a separate pytest process, the way a user
runs them, returning the verdict and every test's outcome.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from postdeploy.local.platform import LocalPlatform
from postdeploy.sysutil import free_port

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
#: A bounded wall-clock limit for one run of the suites in a subprocess.
SUITE_RUN_TIMEOUT_S = 300


#: A check's outcome across its cases: a later one in this list wins.
OUTCOME_RANK = ("passed", "skipped", "broken", "failed")


@dataclass
class SuiteRun:
    """One run of the suites: ``outcomes`` maps each check (function name, any target or
    parameter) to ``passed``, ``skipped``, ``broken`` or ``failed`` - failed only for an
    assertion about the target, broken for anything else (the verdict's kind per failure)."""

    returncode: int
    output: str
    verdict: dict
    outcomes: dict[str, str] = field(default_factory=dict)

    def target(self, name: str = "local") -> dict:
        return self.verdict["targets"][name]

    def failed(self) -> set[str]:
        return {name for name, outcome in self.outcomes.items() if outcome == "failed"}

    def broken(self) -> set[str]:
        return {name for name, outcome in self.outcomes.items() if outcome == "broken"}

    def passed(self) -> set[str]:
        return {name for name, outcome in self.outcomes.items() if outcome == "passed"}

    def messages(self, check: str) -> list[str]:
        """The verdict's failure messages of ``check`` (every target, case and phase)."""
        return [
            failure["message"]
            for entry in self.verdict.get("targets", {}).values()
            for failure in entry.get("failures", [])
            if check_name(failure["test"]) == check
        ]

    def assert_caught(self, caught_by: dict[str, str]) -> None:
        """Each check *failed* (an assertion, not broken) with ``words`` in its message:
        it failed for the defect, not for anything else."""
        for check, words in caught_by.items():
            outcome = self.outcomes.get(check)
            assert outcome == "failed", (
                f"{check} is {outcome}, not failed\n{self.messages(check)}\n{self.output[-3000:]}"
            )
            text = "\n".join(self.messages(check))
            assert words in text, f"{check} failed, but not naming {words!r}:\n{text[:2000]}"


def check_name(nodeid_or_name: str) -> str:
    """``suites/x/test_y.py::test_z[local-a]`` -> ``test_z``."""
    return nodeid_or_name.rsplit("::", 1)[-1].split("[")[0]


def _worse(current: str | None, outcome: str) -> str:
    if current is None or OUTCOME_RANK.index(outcome) > OUTCOME_RANK.index(current):
        return outcome
    return current


def junit_cases(junit: Path) -> dict[str, str]:
    """passed/failed/skipped of every test case (with its parameters) in ``junit``."""
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = "failed" if kinds & {"failure", "error"} else "passed"
        outcomes[case.get("name", "")] = "skipped" if "skipped" in kinds else outcome
    return outcomes


def _outcomes(junit: Path, verdict: dict) -> dict[str, str]:
    """Each check's outcome: junit says whether it passed; the verdict says whether a case
    that did not pass *failed* (an assertion about the target) or *broke* (anything else)."""
    kinds: dict[str, str] = {}
    for entry in verdict.get("targets", {}).values():
        for failure in entry.get("failures", []):
            name = check_name(failure["test"])
            kinds[name] = _worse(kinds.get(name), failure["kind"])
    outcomes: dict[str, str] = {}
    if not junit.exists():
        return outcomes
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = check_name(case.get("name", ""))
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                # no verdict entry (a test of no target): an error outside the call is broken
                fallback = "failed" if child.tag == "failure" else "broken"
                outcome = _worse(outcome, kinds.get(name, fallback))
            elif child.tag == "skipped":
                outcome = _worse(outcome, "skipped")
        outcomes[name] = _worse(outcomes.get(name), outcome)
    return outcomes


@dataclass
class LocalEnv:
    """A private local platform for the self-tests."""

    state_dir: Path
    port: int
    reports_root: Path
    runs: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "POSTDEPLOY_STATE_DIR": str(self.state_dir),
            "POSTDEPLOY_LOCAL_URL": self.url,
            "PYTEST_ADDOPTS": "",
        }

    @property
    def platform(self) -> LocalPlatform:
        return LocalPlatform(self.url, state_dir=self.state_dir)

    def run(
        self, *args: str, suites: tuple[str, ...] = ("suites",), env: dict[str, str] | None = None
    ) -> SuiteRun:
        """Run ``pytest SUITES --target local ARGS`` from the repository, in a subprocess."""
        self.runs += 1
        reports = self.reports_root / f"run-{self.runs}"
        command = [
            sys.executable, "-m", "pytest", *suites, "--target", "local",
            "--reports-dir", str(reports), "-p", "no:cacheprovider", "-q", *args,
        ]  # fmt: skip
        done = subprocess.run(
            command, cwd=REPO, env={**self.env, **(env or {})}, capture_output=True, text=True,
            timeout=SUITE_RUN_TIMEOUT_S, check=False,
        )  # fmt: skip
        verdict_file = reports / "verdict.json"
        verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
        return SuiteRun(
            done.returncode,
            done.stdout + done.stderr,
            verdict,
            _outcomes(reports / "junit.xml", verdict),
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "postdeploy.cli", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnv]:
    """A local platform of its own for one test module; stopped afterwards."""
    root = tmp_path_factory.mktemp("local")
    env = LocalEnv(state_dir=root / "state", port=free_port(), reports_root=root / "reports")
    yield env
    env.platform.stop()


class _HealthHandler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = json.dumps(
            {"status": "healthy" if self.status == 200 else "unhealthy", "version": "9.9.9",
             "checks": {"database": {"status": "healthy"}}}
        ).encode()  # fmt: skip
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """``server`` answering in a background thread: its ``http://127.0.0.1:PORT``; shut down
    and closed afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def health_server() -> Iterator[str]:
    """A plain-HTTP stand-in answering GET /api/health, for plugin tests that need a target."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    server.status = 200  # type: ignore[attr-defined]
    with serving(server) as url:
        yield url
