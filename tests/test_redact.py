"""Redaction: no credential survives into a recorded exchange, verdict or audit line."""

from __future__ import annotations

import json

import httpx

from postdeploy.config import Target
from postdeploy.http import Recorder
from postdeploy.redact import (
    REDACTED,
    SECRET_PATTERNS,
    redact_body,
    redact_data,
    redact_text,
    redact_url,
)

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNlY3JldA"
#: An AWS-access-key-shaped value, built at run time so no key-shaped literal is committed.
FAKE_AWS_KEY = "AKIA" + "EXAMPLE" * 2 + "XY"


def test_json_secret_fields_lose_their_values():
    body = json.dumps({"email": "a@example.com", "password": "hunter22", "access_token": TOKEN})
    redacted = redact_body(body, "application/json")
    assert "hunter22" not in redacted
    assert TOKEN not in redacted
    assert "a@example.com" in redacted


def test_free_text_credentials_are_removed():
    text = f"Authorization: Bearer {TOKEN}; cookie la_session={TOKEN}; key {FAKE_AWS_KEY}"
    redacted = redact_text(text)
    assert TOKEN not in redacted
    assert FAKE_AWS_KEY not in redacted


def test_extra_secrets_are_removed_wherever_they_appear():
    assert redact_text("webhook https://hooks.example/T000/s3cr3tpath", ["s3cr3tpath"]).endswith(
        REDACTED
    )


def test_urls_lose_userinfo_and_secret_parameters():
    url = redact_url("https://user:pw@example.com/x?token=abc&page=2")
    assert "pw" not in url
    assert "abc" not in url
    assert "page=2" in url


def test_nested_data_is_redacted():
    data = redact_data({"rollback": {"headers": {"Authorization": "Bearer abcdefghijkl"}}})
    assert data["rollback"]["headers"]["Authorization"] == REDACTED


def test_recorded_exchanges_never_carry_credentials():
    def app(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"access_token": TOKEN, "token_type": "bearer"},
            headers={"Set-Cookie": f"la_session={TOKEN}; Secure; HttpOnly"},
        )

    recorder = Recorder()
    target = Target(name="t", platform="render", url="https://example.com")
    with httpx.Client(
        base_url=target.url, transport=httpx.MockTransport(app), event_hooks=recorder.hooks()
    ) as client:
        client.post(
            "/api/auth/login",
            json={"email": "a@example.com", "password": "hunter22"},
            headers={"Authorization": f"Bearer {TOKEN}", "X-CSRF-Token": "csrf-secret-value"},
        )
    rendered = recorder.render()
    for secret in (TOKEN, "hunter22", "csrf-secret-value"):
        assert secret not in rendered
    assert "a@example.com" in rendered
    assert "HTTP 200" in rendered


def test_credentials_inside_urls_in_free_text_are_removed():
    text = "redeploy on https://deployer:hunter22pw@127.0.0.1:18443 now"
    assert redact_text(text) == f"redeploy on https://{REDACTED}@127.0.0.1:18443 now"


def test_json_secret_fields_quoted_in_free_text_are_removed():
    text = 'got {"access_token": "opaque-123456", "token_type": "bearer", "email": "a@b.c"}'
    redacted = redact_text(text)
    assert "opaque-123456" not in redacted
    assert '"token_type": "bearer"' in redacted
    assert "a@b.c" in redacted


def test_a_url_secret_is_known_by_its_parts():
    from postdeploy.redact import secret_parts

    url = (
        "https://hookuser:H00kTokenValue@hooks.example:8443/p/T0ABC/Bx9sLk3mQ2vT7pZ?sig=S1gValue42"
    )

    parts = secret_parts(url)

    assert url in parts
    assert "hookuser:H00kTokenValue" in parts  # the userinfo, as a host message would print it
    assert "H00kTokenValue" in parts
    assert "S1gValue42" in parts  # a query value
    assert "Bx9sLk3mQ2vT7pZ" in parts  # a path segment that looks like a token
    assert "hooks.example:8443" not in parts
    assert "T0ABC" not in parts  # short, or no token shape: ordinary text stays
    assert secret_parts("plain-routing-key-123") == ["plain-routing-key-123"]


def test_a_host_for_messages_never_has_userinfo():
    from postdeploy.redact import public_host

    assert public_host("https://user:TOKEN@host.example:8443/x") == "host.example:8443"
    assert public_host("http://127.0.0.1:9/") == "127.0.0.1:9"
    assert public_host("not a url") == "an invalid URL"


def test_the_run_s_secrets_include_each_url_secret_s_parts(monkeypatch):
    from postdeploy.config import DEFAULT_TARGETS_FILE, load_targets
    from postdeploy.settings import known_secrets

    monkeypatch.setenv("SELFTEST_HOOK", "https://u:Wh00kPassw0rd@h.example/x/AbCdEf123456789")
    environ = {"POSTDEPLOY_LOCAL_NOTIFY_WEBHOOK_URL_ENV": "SELFTEST_HOOK"}
    local = load_targets(DEFAULT_TARGETS_FILE, environ=environ).targets["local"]

    found = known_secrets([local])

    assert {"u:Wh00kPassw0rd", "Wh00kPassw0rd", "AbCdEf123456789"} <= set(found)
    message = "webhook: could not reach u:Wh00kPassw0rd@h.example (ConnectError)"
    assert "Wh00kPassw0rd" not in redact_text(message, found)


def _every_pattern(text: str) -> str:
    """What redact_text did before its literal guards: every pattern over the whole text."""
    for pattern, replacement, _literals, _ignore_case in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def test_the_literal_guards_never_change_what_is_redacted():
    """A pattern is skipped only when the text lacks every literal a match must contain; the
    four non-ASCII letters that ``re.IGNORECASE`` matches to ASCII ones count as those."""
    texts = [
        f"Authorization: Bearer {TOKEN}",
        "BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "ba\u017fic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",  # long s: a case-free match of "s"
        "BA\u0130C abcdefghijkl and BAS\u0131C abcdefghijkl",  # dotted and dotless i
        "to\u212aen=abcdef; la_SESSION=xyz; csrf_token=q",  # Kelvin sign: a case-free "k"
        f"https://deploy:{TOKEN[:12]}@example.com/hook",
        '{"access_token": "abc", "token_type": "bearer", "API_KEY": "k"}',
        f"{FAKE_AWS_KEY} xoxb-1234567890abcdef FlyV1 fm2_abcdefghijkl rnd_abcdefghijk",
        "nothing secret here at all",
        "<html>" + "<p>basic token= :// password</p>" * 200 + "</html>",
    ]
    for text in texts:
        assert redact_text(text) == _every_pattern(text), text[:60]
