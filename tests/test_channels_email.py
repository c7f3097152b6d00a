"""E-mail over SMTP against a real server (aiosmtpd): STARTTLS, credentials, safe failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from postdeploy.reporting.channels import Event, Notification, notify
from postdeploy.reporting.mail import EmailChannel
from postdeploy.reporting.notifications import all_channels
from tests.conftest import free_port
from tests.standins.smtp import SmtpServer

PASSWORD = "smtpSECRETpassw0rd"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path, "postdeploy", PASSWORD) as running:
        yield running


def channel(smtp: SmtpServer, **changes) -> EmailChannel:
    fields = {
        "host": "127.0.0.1", "port": smtp.port, "sender": "postdeploy@example.com",
        "recipients": ("oncall@example.com",), "username": "postdeploy", "password": PASSWORD,
        "ca_file": str(smtp.ca_file), "timeout_s": 5.0,
    }  # fmt: skip
    return EmailChannel(**{**fields, **changes})


def completed() -> Notification:
    return Notification(
        target="local", platform="local", url="https://127.0.0.1:18443", verdict="failed",
        failing_checks=["suites/monitoring/test_health.py::test_health[local]"],
        rollback={"status": "succeeded", "from_release": {"version": "2.0.0"},
                  "to_release": {"version": "1.0.0"}, "verification": {"status": "passed"}},
        release="2.0.0", run_id="run-9", event=Event.COMPLETED, sev=1,
        details=["verified  12:00:09.000Z (+9.000 s)"],
    )  # fmt: skip


def test_a_message_is_delivered_over_starttls_with_the_credentials(smtp):
    [result] = notify(completed(), [channel(smtp)])
    assert result.ok, result.message
    [message] = smtp.messages
    assert message["Subject"].startswith("[postdeploy] [Sev 1 CRITICAL] local (local): ")
    assert "rollback completed, verification passed" in message["Subject"]
    assert message["X-Postdeploy-Dedup-Key"] == "postdeploy/local/2.0.0"
    body = message.get_content()
    assert "test_health[local]" in body
    assert "verified  12:00:09.000Z" in body
    assert smtp.envelopes == [("postdeploy@example.com", ["oncall@example.com"])]


def test_a_wrong_password_is_a_failed_result_that_never_shows_it(smtp):
    [result] = notify(completed(), [channel(smtp, password="wrong" + PASSWORD)])
    assert not result.ok
    assert "refused the credentials (535)" in result.message
    assert PASSWORD not in result.message
    assert smtp.messages == []
    assert PASSWORD not in repr(channel(smtp))


def test_an_untrusted_certificate_is_refused_not_ignored(smtp):
    [result] = notify(completed(), [channel(smtp, ca_file="")])
    assert not result.ok
    assert "TLS failed" in result.message
    assert smtp.messages == []


def test_a_server_without_starttls_gets_nothing_in_clear():
    class Keep:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    handler = Keep()
    plain = Controller(handler, hostname="127.0.0.1", port=free_port())
    plain.start()
    try:
        mail = EmailChannel("127.0.0.1", plain.port, "a@example.com", ("b@example.com",))
        [result] = notify(completed(), [mail])
    finally:
        plain.stop()
    assert not result.ok
    assert "does not offer STARTTLS; not sent in clear" in result.message
    assert handler.messages == []


def test_an_unreachable_server_is_a_failed_result_not_a_hang():
    mail = EmailChannel("127.0.0.1", free_port(), "a@example.com", ("b@example.com",),
                        timeout_s=1.0)  # fmt: skip
    [result] = notify(completed(), [mail])
    assert not result.ok
    assert "could not reach 127.0.0.1" in result.message


def test_the_channel_comes_from_configuration_with_credentials_from_env(smtp):
    section = {
        "smtp_host": "127.0.0.1", "smtp_port": float(smtp.port), "smtp_starttls": True,
        "smtp_ca_file": str(smtp.ca_file), "smtp_username_env": "SELFTEST_SMTP_USER",
        "smtp_password_env": "SELFTEST_SMTP_PASSWORD", "email_from": "postdeploy@example.com",
        "email_to": "a@example.com, b@example.com", "timeout_s": 5.0,
    }  # fmt: skip
    env = {"SELFTEST_SMTP_USER": "postdeploy", "SELFTEST_SMTP_PASSWORD": PASSWORD}
    [mail] = all_channels(section, env)
    assert isinstance(mail, EmailChannel)
    assert mail.recipients == ("a@example.com", "b@example.com")
    assert notify(completed(), [mail])[0].ok
    [incomplete] = all_channels({**section, "email_to": ""}, env)
    assert "email_from or email_to is not" in notify(completed(), [incomplete])[0].message


def test_named_but_unset_credentials_are_reported_not_tried():
    section = {
        "smtp_host": "127.0.0.1", "email_from": "a@example.com", "email_to": "b@example.com",
        "smtp_username_env": "SELFTEST_SMTP_USER", "smtp_password_env": "SELFTEST_SMTP_PASSWORD",
    }  # fmt: skip
    [mail] = all_channels(section, {"SELFTEST_SMTP_USER": "postdeploy"})
    [result] = notify(completed(), [mail])
    assert not result.ok
    assert "$SELFTEST_SMTP_PASSWORD (from smtp_password_env) is not set" in result.message
