"""Log collection: the Loki query_range client, the platform-driver source, and the failures
("no data" and "not this line") of waiting for a line."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from postdeploy.config import load_targets
from postdeploy.monitoring.logs import (
    DriverLogs,
    LogCollectionError,
    LogsMissing,
    LokiLogs,
    log_source,
    wait_for_line,
)

SELECTOR = '{service="learning-assistant"}'


def loki_answer(lines: list[str]) -> dict:
    """A query_range answer in Loki's documented shape (a streams result)."""
    values = [[str(time.time_ns()), line] for line in lines]
    return {
        "status": "success",
        "data": {"resultType": "streams", "result": [{"stream": {"a": "b"}, "values": values}]},
    }


def test_loki_is_asked_for_the_needle_with_token_and_tenant(api_server):
    server = api_server(lambda h: (200, loki_answer(['{"request_id": "rid-1"}']), {}))
    source = LokiLogs(server.url, SELECTOR, 5, token="loki-token", tenant="team-a")

    line = wait_for_line(source, "rid-1", timeout_s=1, since=time.time())

    assert line == '{"request_id": "rid-1"}'
    path, headers = server.requests[0]
    query = parse_qs(urlsplit(path).query)
    assert urlsplit(path).path == "/loki/api/v1/query_range"
    assert query["query"] == [f'{SELECTOR} |= "rid-1"']
    assert query["direction"] == ["backward"]
    assert int(query["start"][0]) < int(query["end"][0])
    assert headers["Authorization"] == "Bearer loki-token"
    assert headers["X-Scope-OrgID"] == "team-a"


def test_a_line_loki_never_returns_is_a_failure_naming_loki(api_server):
    server = api_server(lambda h: (200, loki_answer([]), {}))
    source = LokiLogs(server.url, SELECTOR, 5)

    with pytest.raises(LogsMissing, match=r"'rid-2' did not appear in Grafana Loki at"):
        wait_for_line(source, "rid-2", timeout_s=0.3, since=time.time())


def test_a_loki_error_is_a_failure_with_the_query(api_server):
    server = api_server(lambda h: (400, b"parse error at line 1", {"Content-Type": "text/plain"}))

    with pytest.raises(LogCollectionError, match=r"query_range \(query .*answered HTTP 400: parse"):
        LokiLogs(server.url, SELECTOR, 5).lines("x", time.time())


def test_an_unreachable_loki_fails_fast():
    with pytest.raises(LogCollectionError, match="Loki is unreachable"):
        LokiLogs("http://127.0.0.1:9", SELECTOR, 2).lines("x", time.time())


class Lines:
    """A log source returning fixed lines."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines

    def describe(self) -> str:
        return "the test source"

    def lines(self, needle: str, since: float) -> list[str]:
        return self._lines


def test_no_lines_at_all_is_no_data():
    with pytest.raises(LogsMissing, match="no data: the test source returned no log lines"):
        wait_for_line(Lines([]), "rid", timeout_s=0.2, since=time.time())


def test_lines_without_the_request_say_it_was_not_collected():
    with pytest.raises(LogsMissing, match=r"'rid' did not appear .* \(2 lines read"):
        wait_for_line(Lines(["a", "b"]), "rid", timeout_s=0.2, since=time.time())


def test_the_platform_driver_is_the_default_source_and_loki_wins_when_configured(tmp_path):
    targets = tmp_path / "targets.toml"
    targets.write_text(
        '[targets.a]\nplatform = "local"\nurl = "https://127.0.0.1:1"\n'
        '[targets.b]\nplatform = "local"\nurl = "https://127.0.0.1:2"\n'
        '[targets.b.monitoring]\nloki_url = "http://loki:3100"\nloki_query = \'{app="x"}\'\n'
    )
    loaded = load_targets(targets, environ={}).targets

    assert isinstance(log_source(loaded["a"]), DriverLogs)
    loki = log_source(loaded["b"])
    assert isinstance(loki, LokiLogs)
    assert loki.selector == '{app="x"}'


def test_the_local_driver_reads_the_deployment_log(tmp_path, monkeypatch):
    monkeypatch.setenv("POSTDEPLOY_STATE_DIR", str(tmp_path))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "release-1.log").write_text('{"request_id": "rid-9"}\n')
    (tmp_path / "state.json").write_text(
        '{"releases": [{"id": 1, "version": "1.0.0"}], "deployment": '
        '{"release_id": 1, "pid": 1, "url": "https://127.0.0.1:1", "started_at": ""}}'
    )
    targets = tmp_path / "targets.toml"
    targets.write_text('[targets.local]\nplatform = "local"\nurl = "https://127.0.0.1:1"\n')
    source = log_source(load_targets(targets, environ={}).targets["local"])

    assert wait_for_line(source, "rid-9", timeout_s=0.5, since=time.time()) == (
        '{"request_id": "rid-9"}'
    )
