"""HTTP behaviour shared by every route: headers, the error shape, limits, compression."""

from __future__ import annotations

import pytest
from learning_assistant.security import SECURITY_HEADERS


@pytest.mark.parametrize("path", ["/api/health", "/no/such/route", "/", "/static/app.js"])
def test_every_response_carries_the_security_headers(shared_client, path):
    response = shared_client.get(path)

    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers
    assert "access-control-allow-origin" not in response.headers


def test_an_unknown_route_is_a_json_404(shared_client):
    response = shared_client.get("/api/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_wrong_method_is_a_json_405(shared_client):
    response = shared_client.delete("/api/health")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


def test_invalid_json_is_a_422_naming_the_body(shared_client):
    response = shared_client.post(
        "/api/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "validation_error",
        "message": "body: is not valid JSON",
    }


def test_an_oversized_body_is_a_json_413(shared_client):
    response = shared_client.post(
        "/api/auth/register", content=b"x" * 70_000, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_an_unhandled_exception_is_a_json_500_without_a_traceback(client, capsys):
    def explode() -> None:
        raise RuntimeError("database exploded")

    client.app.add_api_route("/api/explode", explode)

    response = client.get("/api/explode")

    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in response.text
    assert "exploded" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '"level": "error"' in capsys.readouterr().out


def test_login_attempts_are_rate_limited(new_client, new_account):
    client = new_client(LA_RATE_LIMIT_LOGIN="3/60")
    account = new_account(client)  # first attempt
    wrong = {"email": account.email, "password": "wrong-password"}
    assert client.post("/api/auth/login", json=wrong).status_code == 401
    assert client.post("/api/auth/login", json=wrong).status_code == 401

    response = client.post("/api/auth/login", json=account.credentials)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_registrations_are_rate_limited(new_client):
    client = new_client(LA_RATE_LIMIT_REGISTER="1/60")
    user = {"email": "first@example.com", "password": "long-enough", "name": "First"}
    assert client.post("/api/auth/register", json=user).status_code == 201

    response = client.post("/api/auth/register", json={**user, "email": "second@example.com"})

    assert response.status_code == 429
    assert "retry-after" in response.headers


def test_text_responses_are_compressed(shared_client):
    response = shared_client.get("/api/learning/content", headers={"Accept-Encoding": "gzip"})

    assert response.headers["content-encoding"] == "gzip"


def test_static_files_are_cacheable_and_validated(shared_client):
    response = shared_client.get("/static/app.css")

    assert response.headers["cache-control"] == "public, max-age=3600"
    assert "etag" in response.headers
    assert "last-modified" in response.headers
    etag = response.headers["etag"]
    again = shared_client.get("/static/app.css", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_the_openapi_document_describes_the_api(shared_client):
    paths = shared_client.get("/openapi.json").json()["paths"]

    assert {"/api/health", "/api/auth/login", "/api/learning/session", "/api/users/me"} <= set(
        paths
    )
    assert "422" in paths["/api/auth/register"]["post"]["responses"]
