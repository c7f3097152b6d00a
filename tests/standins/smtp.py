"""A real SMTP server for the self-tests: aiosmtpd on 127.0.0.1 with STARTTLS required.

Not a stand-in: aiosmtpd speaks SMTP (RFC 5321), STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN
(RFC 4954). The server refuses AUTH and MAIL before STARTTLS, checks one user name and
password, and keeps every accepted message (parsed) in :attr:`SmtpServer.messages`. Its
certificate comes from a throwaway CA whose PEM is :attr:`SmtpServer.ca_file`.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpServer:
    def __init__(self, directory: Path, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.failed_logins = 0
        ca = trustme.CA()
        self.ca_file = directory / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.port = _free_port()
        server = self

        class Handler:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                server.messages.append(message)  # type: ignore[arg-type]
                return "250 Message accepted for delivery"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            if isinstance(data, LoginPassword) and (
                data.login.decode(),
                data.password.decode(),
            ) == (server.username, server.password):
                return AuthResult(success=True)
            server.failed_logins += 1
            return AuthResult(success=False, handled=False)

        self._controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, tls_context=context,
            require_starttls=True, auth_require_tls=True, auth_required=True,
            authenticator=authenticate,
        )  # fmt: skip

    def __enter__(self) -> SmtpServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
