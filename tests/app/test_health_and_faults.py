"""Health, releases on a persistent database, and every fault the app can be deployed with."""

from __future__ import annotations

import pytest
from learning_assistant.faults import FAULTS, Faults, parse_faults


def test_health_reports_the_release_and_a_real_database_check(client):
    response = client.get("/api/health")

    assert response.status_code == 200
    assert response.headers["x-health-status"] == "healthy"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "healthy"
    assert body["version"] == "1.2.3"
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["uptime_s"] >= 0


def test_health_is_unhealthy_when_the_database_cannot_be_reached(client, monkeypatch):
    database = client.app.state.services.database
    monkeypatch.setattr(database, "ping", database.unreachable().ping)

    response = client.get("/api/health")

    assert response.status_code == 503
    assert response.json()["checks"]["database"]["error"]


def test_data_survives_a_redeploy_on_the_same_database(new_client, new_account):
    first = new_client(LA_VERSION="1.0.0")
    account = new_account(first)

    second = new_client(LA_VERSION="1.1.0")

    assert second.get("/api/health").json()["version"] == "1.1.0"
    login = second.post("/api/auth/login", json=account.credentials)
    assert login.status_code == 200
    assert len(second.get("/api/learning/content").json()["items"]) >= 4


def test_an_unknown_fault_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match=r"unknown fault 'nope'; known faults: .*health_down"):
        parse_faults("health_down, nope")


def test_faults_parse_a_comma_separated_list():
    faults = Faults.parse(" health_down,login_broken ,")

    assert faults.active("health_down")
    assert not faults.active("wrong_version")


def test_every_fault_is_described():
    assert {"health_down", "login_broken", "progress_not_persisted", "wrong_version"} <= set(FAULTS)
    assert all(description.strip() for description in FAULTS.values())


def test_fault_health_down(new_client):
    client = new_client(LA_FAULTS="health_down")

    response = client.get("/api/health")

    assert response.status_code == 503
    assert response.headers["x-health-status"] == "unhealthy"
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["status"] == "unhealthy"
    assert body["checks"]["database"]["error"]


def test_fault_login_broken(new_client):
    client = new_client(LA_FAULTS="login_broken")
    user = {"email": "valid@example.com", "password": "valid-password", "name": "Valid"}
    assert client.post("/api/auth/register", json=user).status_code == 201

    response = client.post(
        "/api/auth/login", json={"email": user["email"], "password": user["password"]}
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_fault_progress_not_persisted(new_client, new_account):
    healthy = new_client()
    account = new_account(healthy)
    faulty = new_client(LA_FAULTS="progress_not_persisted")

    response = faulty.post(
        "/api/learning/session",
        json={"content_id": 1, "duration_s": 5, "score": 50},
        headers=account.bearer,
    )

    assert response.status_code == 201
    assert response.json()["content_id"] == 1
    assert faulty.get("/api/learning/progress", headers=account.bearer).json()["sessions"] == 0


def test_fault_wrong_version(new_client):
    client = new_client(LA_FAULTS="wrong_version")

    response = client.get("/api/health")

    assert response.status_code == 200
    assert response.json()["version"] != "1.2.3"


def test_fault_sqli_500_shows_the_database_error_on_either_back_end(new_client):
    from postdeploy.security.input_validation import ERROR_SIGNATURES

    client = new_client(LA_FAULTS="sqli_500")

    quoted = {"email": "o'brien@example.com", "password": "whatever"}
    response = client.post("/api/auth/login", json=quoted)

    assert response.status_code == 500
    sql_error = dict(ERROR_SIGNATURES)["SQL error text"]
    assert sql_error.search(response.text), response.text


def test_fault_health_lies_on_either_back_end(new_client):
    client = new_client(LA_FAULTS="health_lies")

    assert client.get("/api/health").json()["status"] == "healthy"
    assert client.get("/api/learning/content").status_code == 500
