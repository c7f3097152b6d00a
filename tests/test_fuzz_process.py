"""schemathesis in a process of its own (``fuzz_in_process``): the report, every account a
registration created, and any error come back as if the fuzzing had run in the harness; a
process out of time is stopped and says so.

The target is a small HTTP server in this test with a two-operation OpenAPI document."""

from __future__ import annotations

import json
import pickle
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from postdeploy.config import Target
from postdeploy.security.fuzz import FuzzError, FuzzPlan
from postdeploy.security.fuzz_process import FuzzProcessError, fuzz_in_process
from tests.conftest import serving

TIMEOUT_S = 120.0
REGISTER = ("POST", "/register")


def _credentials_operation(email: dict[str, str], answered: str) -> dict:
    """A POST taking ``{email, password}`` as JSON (``email``: the schema of the address)."""
    body = {
        "type": "object",
        "required": ["email", "password"],
        "properties": {"email": email, "password": {"type": "string"}},
    }
    return {
        "post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"201": {"description": answered}},
        }
    }


DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/register": _credentials_operation({"type": "string"}, "created"),
        "/boom": {"get": {"responses": {"200": {"description": "ok"}}}},
        "/login": _credentials_operation({"type": "string", "format": "email"}, "logged in"),
    },
}

#: The bodies of the logins the server got.
LOGINS: list[bytes] = []


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path == "/login":
            LOGINS.append(body)
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
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as served:
        yield served


def plan(login_email: str = "pd-run-login{}@example.com") -> FuzzPlan:
    return FuzzPlan(
        auth_headers={},
        protected=frozenset(),
        destructive=frozenset(),
        registration=REGISTER,
        existing_email="pd-fuzz@example.com",
        max_registrations=2,
        login=("POST", "/login"),
        login_email=login_email,
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
    assert report.operations == 3
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


def test_each_positive_login_uses_a_fresh_address_of_the_run(url):
    """The generated cases are the same in every run; a target limits logins per address."""

    def emails(login_email: str) -> list[str]:
        LOGINS.clear()
        fuzz_in_process(
            Target(name="t", platform="local", url=url),
            DOCUMENT,
            plan(login_email),
            examples=5,
            on_account=lambda *_: None,
            timeout_s=TIMEOUT_S,
        )
        sent = [json.loads(body) for body in LOGINS if body.startswith(b"{")]
        return [b["email"] for b in sent if isinstance(b, dict) and isinstance(b.get("email"), str)]

    first, second = emails("pd-one-login{}@example.com"), emails("pd-two-login{}@example.com")
    fresh_first = [e for e in first if e.startswith("pd-one-login")]
    fresh_second = [e for e in second if e.startswith("pd-two-login")]
    assert fresh_first, first
    assert len(set(fresh_first)) == len(fresh_first)  # one address per case
    assert len(fresh_second) == len(fresh_first)  # the same cases, derandomized
    assert not set(first) & set(fresh_second)
