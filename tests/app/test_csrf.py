"""CSRF: writes authenticated by the session cookie need the X-CSRF-Token header."""

from __future__ import annotations

SESSION = {"content_id": 1, "duration_s": 30, "score": 75}


def test_a_cookie_write_without_the_csrf_token_is_forbidden(client, account):
    response = client.post("/api/learning/session", json=SESSION)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


def test_a_cookie_write_with_a_wrong_csrf_token_is_forbidden(client, account):
    response = client.post("/api/learning/session", json=SESSION, headers={"X-CSRF-Token": "x"})

    assert response.status_code == 403


def test_a_cookie_write_with_the_csrf_token_succeeds(client, account):
    token = client.get("/api/csrf").json()["csrf_token"]

    response = client.post("/api/learning/session", json=SESSION, headers={"X-CSRF-Token": token})

    assert response.status_code == 201


def test_a_bearer_write_needs_no_csrf_token(client, account):
    client.cookies.clear()

    response = client.post("/api/learning/session", json=SESSION, headers=account.bearer)

    assert response.status_code == 201


def test_logout_by_cookie_needs_the_csrf_token(client, account):
    assert client.post("/api/auth/logout").status_code == 403
    token = client.get("/api/csrf").json()["csrf_token"]

    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get("/api/auth/me", headers=account.bearer).status_code == 401
