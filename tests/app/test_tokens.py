"""Tokens: only HS256 tokens signed with the app's key, unexpired and unrevoked, are accepted."""

from __future__ import annotations

import base64
import json
import time

import pytest
from learning_assistant import tokens

KEY = b"test-secret-key"


def b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_token_round_trips():
    claims = tokens.new_claims("7", ttl_s=60)

    assert tokens.decode(tokens.encode(claims, KEY), KEY) == claims


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-token", "three parts"),
        ("a.b.c", "base64url JSON"),
        (f"{b64({'alg': 'none'})}.{b64({'sub': '1'})}.", "algorithm"),
        (f"{b64({'alg': 'HS512'})}.{b64({'sub': '1'})}.sig", "algorithm"),
    ],
)
def test_malformed_and_unsigned_tokens_are_rejected(token, reason):
    with pytest.raises(tokens.InvalidTokenError, match=reason):
        tokens.decode(token, KEY)


def test_a_token_signed_with_another_key_is_rejected():
    token = tokens.encode(tokens.new_claims("7", ttl_s=60), b"another key")

    with pytest.raises(tokens.InvalidTokenError, match="signature"):
        tokens.decode(token, KEY)


def test_an_expired_token_is_rejected():
    token = tokens.encode(tokens.new_claims("7", ttl_s=60, now=time.time() - 120), KEY)

    with pytest.raises(tokens.InvalidTokenError, match="expired"):
        tokens.decode(token, KEY)


def test_the_api_rejects_an_alg_none_token_for_a_real_session(client, account):
    claims = claims_of(account.token)
    forged = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."

    response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {forged}"})

    assert response.status_code == 401


def test_the_api_rejects_a_tampered_subject(client, account):
    header, _, signature = account.token.split(".")
    tampered = f"{header}.{b64({**claims_of(account.token), 'sub': '999'})}.{signature}"

    response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {tampered}"})

    assert response.status_code == 401


def test_the_api_rejects_a_validly_signed_token_without_a_session(client, account):
    orphan = tokens.encode(tokens.new_claims(str(account.id), ttl_s=60), KEY)

    response = client.get("/api/auth/me", headers={"Authorization": f"Bearer {orphan}"})

    assert response.status_code == 401


def test_the_api_rejects_an_expired_session(new_client, new_account, monkeypatch):
    client = new_client(LA_TOKEN_TTL_S="1")
    account = new_account(client)
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)

    response = client.get("/api/auth/me", headers=account.bearer)

    assert response.status_code == 401


TEST_TOKEN = "test-only-token-for-short-logins"


def test_a_short_lived_login_needs_the_test_only_token(new_client, new_account, monkeypatch):
    client = new_client(LA_ERROR_TRIGGER_TOKEN=TEST_TOKEN)
    account = new_account(client)
    login = "/api/auth/login?ttl_s=2"

    ignored = client.post(login, json=account.credentials)
    short = client.post(login, json=account.credentials, headers={"X-Postdeploy-Token": TEST_TOKEN})

    assert ignored.json()["expires_in"] == 3600  # without the token: the configured lifetime
    assert short.json()["expires_in"] == 2
    bearer = {"Authorization": f"Bearer {short.json()['access_token']}"}
    assert client.get("/api/auth/me", headers=bearer).status_code == 200
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get("/api/auth/me", headers=bearer).status_code == 401
    too_long = client.post(
        "/api/auth/login?ttl_s=3600", json=account.credentials,
        headers={"X-Postdeploy-Token": TEST_TOKEN},
    )  # fmt: skip
    assert too_long.status_code == 422


def test_without_a_test_only_token_the_lifetime_cannot_be_changed(client, new_account):
    account = new_account(client)
    response = client.post(
        "/api/auth/login?ttl_s=2", json=account.credentials, headers={"X-Postdeploy-Token": ""}
    )
    assert response.json()["expires_in"] == 3600


def test_the_expiry_ignored_fault_accepts_an_expired_token(new_client, new_account, monkeypatch):
    client = new_client(LA_TOKEN_TTL_S="1", LA_FAULTS="expiry_ignored")
    account = new_account(client)
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)

    assert client.get("/api/auth/me", headers=account.bearer).status_code == 200
