"""Several targets in one session, in parallel under xdist: each target's gate and rollback
are its own - one target failing never rolls back another.

Two stand-in deployments (plain-HTTP servers answering ``GET /api/health`` from a state file)
are validated with ``--target all -n 2 --rollback auto``. Their platform is ``command``: the
rollback is a real command (a script that marks the deployment healthy again and logs which
target it rolled back), run by the real controller, verified by the real gating re-run.
"""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.test_quarantine import UNUSED_PLUGINS

ROLLBACK_SCRIPT = """
import pathlib, sys
state, name, log = sys.argv[1:4]
pathlib.Path(state).write_text("healthy")
with open(log, "a") as out:
    out.write(name + "\\n")
"""

TARGET = """
[targets.{name}]
platform = "command"
url = "{url}"
rollback_command = "{command}"

[targets.{name}.rollback]
cooldown_s = 0
wait_timeout_s = 30
poll_interval_s = 0.1
verify_data = false         # these stand-in deployments have no learning-session API
"""

HEALTH = """
import pytest


@pytest.mark.gating
def test_health_endpoint_reports_healthy(api):
    response = api.get("/api/health")
    assert response.status_code == 200, f"health answered {response.status_code}"
"""

MORE = """
import os, pathlib, time

import pytest

LOG = pathlib.Path(__file__).parents[2] / "workers.log"


@pytest.mark.parametrize("n", range(6))
def test_more(target, n):
    time.sleep(0.1)
    with LOG.open("a") as out:
        out.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {target.name}\\n")
"""


class _StateHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        healthy = self.server.state.read_text() == "healthy"  # type: ignore[attr-defined]
        body = json.dumps({"status": "healthy" if healthy else "unhealthy", "version": "2.0.0"})
        self.send_response(200 if healthy else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def deployments(tmp_path: Path) -> Iterator[dict[str, tuple[str, Path]]]:
    """Two stand-in deployments: alpha healthy, beta unhealthy; name -> (url, state file)."""
    servers, found = [], {}
    for name, state in (("alpha", "healthy"), ("beta", "unhealthy")):
        path = tmp_path / f"{name}.state"
        path.write_text(state)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _StateHandler)
        server.state = path  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        found[name] = (f"http://127.0.0.1:{server.server_address[1]}", path)
    yield found
    for server in servers:
        server.shutdown()
        server.server_close()


def test_targets_run_in_parallel_and_only_the_failing_one_is_rolled_back(
    pytester, deployments, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("POSTDEPLOY_STATE_DIR", str(tmp_path / "state"))  # its own ledger
    script = pytester.path / "rollback.py"
    script.write_text(ROLLBACK_SCRIPT)
    log = pytester.path / "rollbacks.log"
    targets = ""
    for name, (url, state) in deployments.items():
        command = shlex.join([sys.executable, str(script), str(state), name, str(log)])
        targets += TARGET.format(name=name, url=url, command=command.replace('"', '\\"'))
    pytester.makefile(".toml", targets=targets)
    pytester.makeini(f"[pytest]\naddopts = --strict-markers -p no:cacheprovider {UNUSED_PLUGINS}\n")
    for folder, name, source in (("monitoring", "test_health.py", HEALTH),
                                 ("functional", "test_more.py", MORE)):  # fmt: skip
        (pytester.path / "suites" / folder).mkdir(parents=True, exist_ok=True)
        (pytester.path / "suites" / folder / name).write_text(source)

    result = pytester.runpytest_subprocess(
        "suites", "--target", "all", "-n", "2", "--rollback", "auto", "--notify", "off"
    )

    verdict = json.loads((pytester.path / "reports" / "verdict.json").read_text())
    alpha, beta = verdict["targets"]["alpha"], verdict["targets"]["beta"]
    output = result.stdout.str()
    assert "2 workers" in output
    # beta failed its gate and was rolled back, verified by re-running its gating checks
    assert beta["gate"] == "failed", beta["reason"]
    assert beta["rollback"]["status"] == "succeeded", beta["rollback"]
    assert beta["rollback"]["verification"]["status"] == "passed"
    # alpha was judged on its own: passed, every check ran, nothing rolled back
    assert alpha["gate"] == "passed", alpha["reason"]
    assert alpha["rollback"] is None or alpha["rollback"]["status"] == "not-needed"
    assert alpha["counts"] == {"passed": 7, "failed": 0, "broken": 0, "skipped": 0}
    assert log.read_text().split() == ["beta"], "only beta's rollback command ran"
    assert result.ret == 1
    # the two workers both validated, and both targets were validated (interleaved)
    ran = [line.split() for line in (pytester.path / "workers.log").read_text().splitlines()]
    assert {worker for worker, _ in ran} == {"gw0", "gw1"}
    assert {target for _, target in ran} >= {"alpha"}
    # the terminal summary shows both, each with its own gate and rollback outcome
    result.stdout.fnmatch_lines(
        [
            "*alpha*gate: PASSED*",
            "*alpha*rollback: not needed*",
            "*beta*gate: FAILED*",
            "*beta*rollback (auto): succeeded*",
        ]
    )
