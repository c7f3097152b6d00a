"""Metrics, request ids and structured logs."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families


def families(client) -> dict:
    text = client.get("/metrics").text
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample_value(family, name: str, **labels: str) -> float:
    for sample in family.samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return 0.0


def test_metrics_expose_the_request_families_and_the_release(client):
    found = families(client)

    assert {"la_http_requests", "la_http_request_duration_seconds", "la_app_info"} <= set(found)
    assert sample_value(found["la_app_info"], "la_app_info", version="1.2.3") == 1


def test_metrics_count_requests_by_route_template(client):
    client.get("/api/learning/content/1")
    client.get("/api/learning/content/2")
    client.get("/no/such/page")

    found = families(client)["la_http_requests"]

    route = "/api/learning/content/{content_id}"
    labels = {"method": "GET", "route": route, "status": "200"}
    assert sample_value(found, "la_http_requests_total", **labels) == 2
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample_value(found, "la_http_requests_total", **unmatched) == 1


def test_a_harness_s_synthetic_requests_are_counted_apart(client):
    client.get("/api/health")  # a platform health checker
    client.get("/api/health", headers={"X-Postdeploy-Synthetic": "run-1"})
    client.get("/api/health", headers={"X-Postdeploy-Synthetic": "run-1"})

    found = families(client)
    labels = {"method": "GET", "route": "/api/health", "status": "200"}
    requests = found["la_http_requests"]
    assert sample_value(requests, "la_http_requests_total", **labels, synthetic="true") == 2
    assert sample_value(requests, "la_http_requests_total", **labels, synthetic="false") == 1
    latency = found["la_http_request_duration_seconds"]
    count = "la_http_request_duration_seconds_count"
    assert sample_value(latency, count, route="/api/health", synthetic="true") == 2
    # bounded: the header's value (a run id) never becomes a label value
    assert all(s.labels.get("synthetic") in ("true", "false") for s in requests.samples)


def test_a_valid_request_id_is_echoed(shared_client):
    response = shared_client.get("/api/health", headers={"X-Request-ID": "deploy-42.check_1"})

    assert response.headers["x-request-id"] == "deploy-42.check_1"


def test_an_unsafe_request_id_is_replaced(shared_client):
    response = shared_client.get("/api/health", headers={"X-Request-ID": "bad id\r\n" + "x" * 200})

    assert len(response.headers["x-request-id"]) == 32


def test_each_request_writes_one_json_log_line_without_secrets(client, account, capsys):
    capsys.readouterr()

    client.post(
        "/api/auth/login",
        json=account.credentials,
        headers={"X-Request-ID": "req-1", "Authorization": f"Bearer {account.token}"},
    )

    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 1
    record = lines[0]
    assert record["event"] == "request"
    assert record["level"] == "info"
    assert record["request_id"] == "req-1"
    assert record["route"] == "/api/auth/login"
    assert record["status"] == 200
    assert record["version"] == "1.2.3"
    assert {"ts", "method", "path", "duration_ms"} <= set(record)
    assert account.password not in output
    assert account.token not in output
