"""schemathesis in a process of its own (``fuzz_in_process``): the report, every account a
registration created, and any error come back as if the fuzzing had run in the harness; a
process out of time is stopped and says so.

The target is a small HTTP server in this test with a two-operation OpenAPI document."""

from __future__ import annotations

import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from postdeploy.config import Target
from postdeploy.security.fuzz import FuzzError, FuzzPlan
from postdeploy.security.fuzz_process import FuzzProcessError, fuzz_in_process

TIMEOUT_S = 120.0
REGISTER = ("POST", "/register")
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/register": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["email", "password"],
                                "properties": {
                                    "email": {"type": "string"},
                                    "password": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {"201": {"description": "created"}},
            }
        },
        "/boom": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
}


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self) -> None:
        self._answer(201)  # every registration "succeeds": each one is an account to delete

    def do_GET(self) -> None:
        self._answer(500)  # a server error only the fuzzer reaches

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def plan() -> FuzzPlan:
    return FuzzPlan(
        auth_headers={},
        protected=frozenset(),
        destructive=frozenset(),
        registration=REGISTER,
        existing_email="pd-fuzz@example.com",
        max_registrations=2,
    )


def test_the_report_and_every_account_come_back_from_the_process(url):
    accounts: list[tuple[str, str]] = []
    report = fuzz_in_process(
        Target(name="t", platform="local", url=url),
        DOCUMENT,
        plan(),
        examples=3,
        on_account=lambda email, password: accounts.append((email, password)),
        timeout_s=TIMEOUT_S,
    )
    assert report.operations == 2
    assert report.cases > 0
    assert any(line.startswith("GET /boom") for line in report.server_errors), report
    # the positive registrations (at most max_registrations) all "created" an account
    assert 1 <= len(accounts) <= 2
    assert {email for email, _ in accounts} == {"pd-fuzz@example.com"}


def test_an_error_in_the_process_is_raised_here_as_itself(url):
    with pytest.raises(FuzzError, match="examples must be between 1 and"):
        fuzz_in_process(
            Target(name="t", platform="local", url=url),
            DOCUMENT,
            plan(),
            examples=0,
            on_account=lambda *_: None,
            timeout_s=TIMEOUT_S,
        )


def test_a_process_out_of_time_is_stopped_and_says_so(url):
    with pytest.raises(FuzzProcessError, match=r"was stopped after 0.01 s without a report"):
        fuzz_in_process(
            Target(name="t", platform="local", url=url),
            DOCUMENT,
            plan(),
            examples=3,
            on_account=lambda *_: None,
            timeout_s=0.01,
        )


def test_a_target_and_its_sections_survive_the_trip_to_the_process():
    from postdeploy.config import Section

    target = Target(
        name="t",
        platform="local",
        url="https://x",
        sections={"limits": Section("limits", {"a": 1})},
    )
    copy = pickle.loads(pickle.dumps(target))  # noqa: S301 - made just above
    assert copy == target
    assert copy.limits.a == 1
    with pytest.raises(AttributeError, match=r"section \[limits\] has no key 'b'"):
        _ = copy.limits.b
