"""The generated fuzz cases kept for the next run of a document (``fuzz_cache``): the next run
sends exactly what generation would have sent, no credential is ever written, and a cache that
cannot be used or written only costs the time of generating again.

The target is a small HTTP server in this test that records every request it gets."""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpx
import pytest

from postdeploy.security import fuzz_cache
from postdeploy.security.fuzz import FuzzPlan, fuzz
from postdeploy.security.fuzz_cache import Batch, CaseCache
from tests.conftest import serving

CASE_ID_HEADER = "x-schemathesis-testcaseid"  # random in every case, generated or not


def _json_operation(method: str, schema: dict, status: str) -> dict:
    return {
        method: {
            "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "responses": {status: {"description": "answered"}},
        }
    }


DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "paths": {
        "/notes": _json_operation(
            "post",
            {
                "type": "object",
                "required": ["text", "score"],
                "properties": {"text": {"type": "string"}, "score": {"type": "number"}},
            },
            "201",
        ),
        "/notes/{id}": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    {"name": "full", "in": "query", "schema": {"type": "boolean"}},
                ],
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/boom": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
}
PROTECTED = frozenset({("GET", "/notes/{id}")})

#: (method, path and query, headers without the case id, body) of every request received.
RECEIVED: list[tuple[str, str, tuple[tuple[str, str], ...], bytes]] = []


class Recorder(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        headers = tuple(
            (name.lower(), value)
            for name, value in self.headers.items()
            if name.lower() not in (CASE_ID_HEADER, "host")
        )
        RECEIVED.append((self.command, self.path, headers, self.rfile.read(length)))
        self.send_response(500 if self.path == "/boom" else 201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url():
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Recorder)) as served:
        yield served


#: The synthetic user's credentials in two runs (made up: the server accepts anything).
FIRST, SECOND = "first-synthetic-credential-0123", "second-synthetic-credential-4567"


def plan(credential: str = FIRST) -> FuzzPlan:
    return FuzzPlan(
        auth_headers={"Authorization": f"Bearer {credential}"},
        protected=PROTECTED,
        destructive=frozenset(),
    )


def run(url: str, cache_dir, fuzz_plan: FuzzPlan | None = None, document=DOCUMENT):
    """One fuzzing run; the report and the requests the target got."""
    RECEIVED.clear()
    with httpx.Client(base_url=url, timeout=10) as client:
        report = fuzz(
            client,
            document,
            fuzz_plan or plan(),
            examples=4,
            on_account=lambda *_: None,
            cache_dir=cache_dir,
        )
    return report, list(RECEIVED)


def test_the_next_run_of_a_document_sends_exactly_the_generated_cases(url, tmp_path):
    generated, sent_generating = run(url, None)
    first, sent_first = run(url, tmp_path)
    again, sent_again = run(url, tmp_path)
    assert not generated.replayed
    assert not first.replayed
    assert again.replayed
    assert len(list(tmp_path.glob("*.json"))) == 1
    # derandomized: generating twice, or replaying, sends the very same requests
    assert sent_first == sent_generating
    assert sent_again == sent_first
    assert (again.cases, again.operations, again.server_errors, again.nonconformant) == (
        first.cases,
        first.operations,
        first.server_errors,
        first.nonconformant,
    )
    assert any(line.startswith("GET /boom") for line in again.server_errors), again


def test_no_credential_is_written_and_a_replay_sends_this_runs(url, tmp_path):
    run(url, tmp_path, plan(FIRST))
    (kept,) = tmp_path.glob("*.json")
    assert FIRST not in kept.read_text(encoding="utf-8")

    report, sent = run(url, tmp_path, plan(SECOND))
    assert report.replayed
    protected = [headers for _, path, headers, _ in sent if path.startswith("/notes/")]
    assert protected
    for headers in protected:
        assert ("authorization", f"Bearer {SECOND}") in headers
    assert not any(FIRST in repr(request) for request in sent)


def test_another_document_is_generated_and_kept_apart(url, tmp_path):
    run(url, tmp_path)
    changed = json.loads(json.dumps(DOCUMENT))
    changed["paths"]["/notes"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"
    ]["text"]["maxLength"] = 5
    report, _ = run(url, tmp_path, document=changed)
    assert not report.replayed
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_a_cache_file_that_cannot_be_used_is_generated_again_and_replaced(url, tmp_path):
    _, sent_generating = run(url, tmp_path)
    (kept,) = tmp_path.glob("*.json")
    for broken in ("{not json", json.dumps({"format": fuzz_cache.FORMAT, "key": "other"})):
        kept.write_text(broken, encoding="utf-8")
        report, sent = run(url, tmp_path)
        assert not report.replayed
        assert sent == sent_generating
        assert json.loads(kept.read_text(encoding="utf-8"))["key"] == kept.stem  # replaced


def test_a_cache_that_cannot_be_written_only_costs_generating_again(url, tmp_path):
    in_the_way = tmp_path / "fuzz-cases"
    in_the_way.write_text("a file where the cache folder should be", encoding="utf-8")
    first, _ = run(url, in_the_way)
    second, _ = run(url, in_the_way)
    assert first.cases == second.cases > 0
    assert not second.replayed


def test_a_case_that_json_cannot_carry_unchanged_is_not_kept(tmp_path):
    operation = SimpleNamespace(method="post", path="/notes")

    def batch(headers: dict[str, str], query: dict) -> Batch:
        case = SimpleNamespace(
            headers=headers,
            path_parameters={},
            query=query,
            cookies={},
            body=None,
            media_type=None,
            multipart_content_types=None,
        )
        return Batch(operation, True, [case])

    fixed = {"Authorization": f"Bearer {FIRST}"}
    cache = CaseCache.of(tmp_path, DOCUMENT, {"examples": 4}, fixed)
    assert not cache.store([batch(fixed, {"tags": ("a", "b")})])  # a tuple comes back a list
    assert not cache.store([batch({"X-Echo": f"Bearer {FIRST}"}, {})])  # a credential elsewhere
    assert not list(tmp_path.iterdir())
    assert cache.store([batch(fixed, {"tags": ["a", "b"]})])


def test_only_the_newest_files_are_kept(tmp_path):
    for index in range(fuzz_cache.KEEP + 3):
        old = tmp_path / f"{index:064x}.json"
        old.write_text("{}", encoding="utf-8")
        os.utime(old, (index, index))
    assert CaseCache.of(tmp_path, DOCUMENT, {"examples": 4}, {}).store([])
    kept = sorted(path.name for path in tmp_path.glob("*.json"))
    assert len(kept) == fuzz_cache.KEEP
    assert f"{0:064x}.json" not in kept
    assert f"{fuzz_cache.KEEP + 2:064x}.json" in kept
