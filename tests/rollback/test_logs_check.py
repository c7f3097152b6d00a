"""The monitoring log check reads a platform's logs through its driver: what the driver found
decides the check, a driver that cannot read them makes it *broken* (never failed)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from postdeploy.config import Target
from postdeploy.monitoring.logs import DriverLogs, LogSourceError
from postdeploy.rollback.base import DriverError
from tests.conftest import serving

REPO = Path(__file__).resolve().parents[2]
CHECK = "suites/monitoring/test_logs.py"
RUN_TIMEOUT_S = 120


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers /api/health, echoes X-Request-ID and writes it to the server's log file."""

    def do_GET(self) -> None:
        request_id = self.headers.get("X-Request-ID", "")
        with open(self.server.log_file, "a", encoding="utf-8") as log:  # type: ignore[attr-defined]
            log.write(f'{{"path": "{self.path}", "request_id": "{request_id}"}}\n')
        body = json.dumps({"status": "healthy", "version": "1.0.0", "checks": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if request_id:
            self.send_header("X-Request-ID", request_id)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    server.log_file = tmp_path / "app.log"  # type: ignore[attr-defined]
    server.log_file.touch()  # type: ignore[attr-defined]
    with serving(server) as url:
        yield url, server.log_file  # type: ignore[attr-defined]


def run_check(tmp_path: Path, url: str, logs_command: str) -> dict:
    targets = tmp_path / "targets.toml"
    targets.write_text(
        "[targets.cmd]\n"
        'platform = "command"\n'
        f'url = "{url}"\n'
        'rollback_command = "true"\n'
        f"logs_command = {json.dumps(logs_command)}\n"
        "[targets.cmd.monitoring]\n"
        "log_wait_s = 2\n",
        encoding="utf-8",
    )
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", CHECK, "--target", "cmd", f"--targets-file={targets}",
         f"--reports-dir={reports}", "-p", "no:cacheprovider", "-q", "--rollback", "auto"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTEST_ADDOPTS": "",
             "POSTDEPLOY_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    verdict_file = reports / "verdict.json"
    assert verdict_file.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(verdict_file.read_text())["targets"]["cmd"]


def test_the_log_check_passes_on_the_lines_the_driver_reads(tmp_path, app):
    url, log_file = app
    verdict = run_check(tmp_path, url, f"cat {shlex.quote(str(log_file))}")
    assert verdict["counts"]["passed"] == 1, verdict
    assert verdict["failures"] == []


def test_a_driver_that_cannot_read_the_logs_makes_the_check_broken_not_failed(tmp_path, app):
    url, _ = app
    verdict = run_check(tmp_path, url, "sh -c 'echo no access >&2; exit 3'")
    (failure,) = verdict["failures"]
    assert failure["kind"] == "broken", failure
    assert "logs_command" in failure["message"]
    assert "exited 3" in failure["message"]
    assert (verdict["rollback"] or {}).get("status", "not-needed") == "not-needed"


def test_lines_without_the_request_fail_the_check(tmp_path, app):
    url, _ = app
    verdict = run_check(tmp_path, url, "echo an unrelated line")
    (failure,) = verdict["failures"]
    assert failure["kind"] == "failed"
    assert "did not appear" in failure["message"]


class _Refusing:
    platform = "render"

    def logs(self, limit: int = 200) -> list[str]:
        raise DriverError("render: reading the logs was refused with 403 Forbidden")


def test_a_driver_error_is_a_log_source_error_not_an_assertion(monkeypatch):
    monkeypatch.setattr("postdeploy.rollback.driver_for", lambda target: _Refusing())
    source = DriverLogs(Target(name="r", platform="render", url="https://r.test"), 10)
    with pytest.raises(LogSourceError, match="403 Forbidden") as caught:
        source.lines("needle", 0.0)
    assert not isinstance(caught.value, AssertionError)
