"""E-mail over SMTP: STARTTLS, credentials from the environment, one message per event.

Configuration (``[targets.X.notify]``): ``smtp_host``, ``smtp_port`` (587), ``smtp_starttls``
(true: the connection is upgraded before anything else is said, and a server that does not
offer STARTTLS is a failed delivery, never a plain-text fallback), ``smtp_ca_file``,
``smtp_username_env`` / ``smtp_password_env`` (the env vars holding the credentials),
``email_from`` and ``email_to``. Failures come back as a :class:`DeliveryResult` whose
message names the server and the SMTP reply code, never a credential.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from postdeploy.redact import redact_text
from postdeploy.reporting.channels import DEFAULT_TIMEOUT_S, DeliveryResult, Notification

if TYPE_CHECKING:
    import httpx

SUBJECT_MAX = 200
X_MAILER = "postdeploy-notify"


def email_message(n: Notification, sender: str, recipients: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = redact_text(f"[postdeploy] {n.summary}")[:SUBJECT_MAX]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="postdeploy")
    message["X-Mailer"] = X_MAILER
    message["X-Postdeploy-Event"] = str(n.event)
    message["X-Postdeploy-Dedup-Key"] = n.dedup_key
    message.set_content(n.text)
    return message


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    starttls: bool = True
    ca_file: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S
    name: str = "email"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password,) if s)

    def _fail(self, what: str) -> DeliveryResult:
        return DeliveryResult(
            self.name, False, redact_text(f"email: {what}", self.secrets()), attempts=1
        )

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult:
        where = f"{self.host}:{self.port}"
        message = email_message(notification, self.sender, self.recipients)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                smtp.ehlo()
                if self.starttls:
                    if not smtp.has_extn("starttls"):
                        return self._fail(f"{where} does not offer STARTTLS; not sent in clear")
                    context = ssl.create_default_context(cafile=self.ca_file or None)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            return self._fail(f"{where} refused the credentials ({exc.smtp_code})")
        except smtplib.SMTPResponseException as exc:
            return self._fail(f"{where} answered {exc.smtp_code}")
        except smtplib.SMTPException as exc:
            return self._fail(f"{where}: {type(exc).__name__}")
        except ssl.SSLError as exc:
            return self._fail(f"{where}: TLS failed ({exc.reason or type(exc).__name__})")
        except TimeoutError:
            return self._fail(f"no answer from {where} within {self.timeout_s:g} s")
        except OSError as exc:
            return self._fail(f"could not reach {where} ({type(exc).__name__})")
        if refused:
            return self._fail(f"{where} refused {len(refused)} recipient(s)")
        return DeliveryResult(
            self.name, True, f"email: delivered to {where} for {len(self.recipients)} "
            f"recipient(s)", 250, 1,
        )  # fmt: skip
