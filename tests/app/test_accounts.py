"""Accounts: registration, login, the current user, logout and account deletion."""

from __future__ import annotations

import pytest

NEW_USER = {"email": "New.User@Example.com", "password": "s3cret-enough", "name": "New User"}


def test_register_returns_the_created_user(client):
    response = client.post("/api/auth/register", json=NEW_USER)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "name", "created_at"}
    assert body["email"] == "new.user@example.com"
    assert body["name"] == "New User"


def test_register_twice_with_the_same_email_is_a_conflict(client):
    client.post("/api/auth/register", json=NEW_USER)

    response = client.post("/api/auth/register", json={**NEW_USER, "email": "NEW.user@example.com"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_exists"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("password", "short"),
        ("password", "x" * 129),
        ("name", ""),
        ("name", "n" * 101),
        ("email", "a\x00b@example.com"),  # PostgreSQL refuses NUL in text: never a 500
        ("name", "nul\x00name"),
    ],
)
def test_register_rejects_invalid_input_naming_the_field(client, field, value):
    response = client.post("/api/auth/register", json={**NEW_USER, field: value})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field}:")


def test_a_nul_character_in_the_login_email_is_invalid_input_not_a_server_error(client):
    response = client.post(
        "/api/auth/login", json={"email": "a\x00@example.com", "password": "whatever1"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("email:")


def test_login_sets_a_hardened_session_cookie(client, account):
    response = client.post("/api/auth/login", json=account.credentials)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"la_session={body['access_token']};")
    for attribute in ("Secure", "HttpOnly", "SameSite=lax", "Path=/", "Max-Age=3600"):
        assert attribute.lower() in cookie.lower()


def test_login_with_a_wrong_password_is_unauthorized(client, account):
    response = client.post(
        "/api/auth/login", json={"email": account.email, "password": "nope-nope"}
    )

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_me_answers_with_bearer_token_and_with_cookie(client, account):
    by_cookie = client.get("/api/auth/me")
    client.cookies.clear()
    by_bearer = client.get("/api/auth/me", headers=account.bearer)

    assert by_bearer.status_code == by_cookie.status_code == 200
    assert by_bearer.json() == by_cookie.json()
    assert by_bearer.json()["email"] == account.email
    assert by_bearer.json()["learning_style"] == "visual"


def test_me_without_credentials_is_unauthorized(client):
    response = client.get("/api/auth/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_logout_revokes_the_token_and_the_cookie(client, account):
    cookie = client.cookies["la_session"]

    response = client.post("/api/auth/logout", headers=account.bearer)

    assert response.status_code == 204
    assert 'la_session=""' in response.headers["set-cookie"]
    client.cookies.set("la_session", cookie)
    assert client.get("/api/auth/me", headers=account.bearer).status_code == 401
    assert client.get("/api/auth/me").status_code == 401


def test_deleting_the_account_removes_it_and_its_data(client, account):
    client.post(
        "/api/learning/session",
        json={"content_id": 1, "duration_s": 60, "score": 90},
        headers=account.bearer,
    )

    response = client.delete("/api/users/me", headers=account.bearer)

    assert response.status_code == 204
    assert client.get("/api/auth/me", headers=account.bearer).status_code == 401
    login = client.post("/api/auth/login", json=account.credentials)
    assert login.status_code == 401
    database = client.app.state.services.database
    with database.connect() as conn:
        for table in ("sessions", "learning_sessions", "profiles"):
            count = conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE user_id = ?",  # noqa: S608
                (account.id,),
            ).fetchone()[0]
            assert count == 0, table
