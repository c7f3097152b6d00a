"""The reference app's monitoring side, in-process: Sentry reporting through the guarded error
route, and each monitoring fault where it lives."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from learning_assistant.app import create_app
from learning_assistant.config import Settings
from learning_assistant.faults import Faults
from prometheus_client.parser import text_string_to_metric_families

from postdeploy.contract import (
    ERROR_CHECK_ID_TAG,
    ERROR_RUN_ID_TAG,
    ERROR_TRIGGER_HEADER,
    METRIC_REQUESTS,
    PATHS,
)

TRIGGER = "trigger-token-for-tests"
EVENT_WAIT_S = 5.0


def app(tmp_path, faults: str = "", **settings) -> TestClient:
    config = Settings(
        version="2.0.0",
        database=str(tmp_path / "la.db"),
        secret_key=b"k" * 32,
        faults=Faults.parse(faults),
        **settings,
    )
    return TestClient(create_app(config), base_url="https://testserver")


def trigger(client: TestClient, token: str | None = TRIGGER, check_id: str = "c-1"):
    headers = {ERROR_TRIGGER_HEADER: token} if token is not None else {}
    return client.post(
        PATHS.error_trigger, json={"run_id": "r-1", "check_id": check_id}, headers=headers
    )


def standin_events(standin) -> list[dict]:
    response = httpx.get(
        f"{standin.url}/api/0/projects/postdeploy-local/learning-assistant/events/",
        headers={"Authorization": f"Bearer {standin.api_token}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_events(standin, count: int = 1) -> list[dict]:
    deadline = time.monotonic() + EVENT_WAIT_S
    while time.monotonic() < deadline:
        events = standin_events(standin)
        if len(events) >= count:
            return events
        time.sleep(0.05)
    return standin_events(standin)


def test_the_error_route_does_not_exist_without_a_token(tmp_path):
    client = app(tmp_path)

    response = trigger(client)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_error_route_refuses_a_missing_or_wrong_token(tmp_path):
    client = app(tmp_path, error_trigger_token=TRIGGER)

    assert trigger(client, token=None).status_code == 403
    assert trigger(client, token="nope").status_code == 403
    assert trigger(client, token=None).json()["error"]["code"] == "forbidden"


def test_the_error_route_is_not_in_the_openapi_document(tmp_path):
    client = app(tmp_path, error_trigger_token=TRIGGER)

    assert PATHS.error_trigger not in client.get(PATHS.openapi).json()["paths"]


def test_a_synthetic_error_reaches_sentry_tagged_with_the_run(tmp_path, standin, sentry_reset):
    client = app(tmp_path, error_trigger_token=TRIGGER, sentry_dsn=standin.dsn)

    response = trigger(client, check_id="check-42")

    assert response.status_code == 500
    assert set(response.json()["error"]) == {"code", "message"}
    assert "Traceback" not in response.text
    [event] = wait_events(standin)
    tags = {tag["key"]: tag["value"] for tag in event["tags"]}
    assert tags[ERROR_CHECK_ID_TAG] == "check-42"
    assert tags[ERROR_RUN_ID_TAG] == "r-1"
    assert tags["release"] == "2.0.0"
    assert tags["request_id"] == response.headers["x-request-id"]
    assert event["title"].startswith("SyntheticError: synthetic error for post-deployment check")
    assert TRIGGER not in json.dumps(standin_events(standin))


def test_error_tracking_off_ignores_the_dsn(tmp_path, standin, sentry_reset, capsys):
    client = app(
        tmp_path, "error_tracking_off", error_trigger_token=TRIGGER, sentry_dsn=standin.dsn
    )

    assert trigger(client).status_code == 500
    time.sleep(0.5)
    assert standin_events(standin) == []
    assert '"error_tracking": false' in capsys.readouterr().out


def test_metrics_missing_removes_the_endpoint(tmp_path):
    assert app(tmp_path, "metrics_missing").get(PATHS.metrics).status_code == 404


def requests_total(client: TestClient) -> float:
    text = client.get(PATHS.metrics).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == METRIC_REQUESTS
    )


def test_metrics_frozen_serves_the_first_exposition_forever(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    healthy, frozen = app(tmp_path / "a"), app(tmp_path / "b", "metrics_frozen")

    first = requests_total(frozen), requests_total(healthy)
    for client in (healthy, frozen):
        client.get(PATHS.health)

    assert requests_total(frozen) == first[0]
    assert requests_total(healthy) > first[1]


def test_logs_dropped_writes_no_request_lines(tmp_path, capsys):
    client = app(tmp_path, "logs_dropped")
    capsys.readouterr()

    client.get(PATHS.health, headers={"X-Request-ID": "find-me"})

    assert "find-me" not in capsys.readouterr().out


def test_health_lies_while_the_database_is_unreachable(tmp_path):
    client = app(tmp_path, "health_lies")

    health = client.get(PATHS.health)
    register = client.post(
        PATHS.register, json={"email": "a@example.com", "password": "long enough", "name": "A"}
    )

    assert health.status_code == 200
    assert health.json()["checks"]["database"]["status"] == "healthy"
    assert register.status_code == 500


@pytest.mark.parametrize("variable", ["LA_SENTRY_DSN", "SENTRY_DSN"])
def test_the_dsn_comes_from_the_environment(variable):
    settings = Settings.from_env({variable: "http://key@127.0.0.1:1/1"})

    assert settings.sentry_dsn == "http://key@127.0.0.1:1/1"
    assert "key@" not in repr(settings)
