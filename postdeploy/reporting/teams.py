"""Microsoft Teams: a Workflows ("Post to a channel when a webhook request is received")
webhook that gets an Adaptive Card.

The documented request body is a ``message`` whose one attachment has the content type
``application/vnd.microsoft.card.adaptive`` and the card as ``content``; the flow answers
202 Accepted. The webhook URL (its path and signature query) is the secret: configuration
names the env var holding it (``[targets.X.notify] teams_webhook_env``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from postdeploy.redact import redact_text
from postdeploy.reporting.channels import (
    MAX_LISTED_CHECKS,
    DeliveryResult,
    Notification,
    post_json,
)

if TYPE_CHECKING:
    import httpx

ADAPTIVE_CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
#: Adaptive Card version Teams renders everywhere (desktop, web, mobile).
ADAPTIVE_CARD_VERSION = "1.4"
#: Shorter query values (``api-version=1``) are not treated as secrets.
MIN_SECRET_CHARS = 8
#: TextBlock colours by event severity.
COLOURS = {"critical": "Attention", "error": "Warning", "warning": "Warning"}


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": redact_text(text), "wrap": True, **style}


def adaptive_card(n: Notification) -> dict[str, Any]:
    """The card: headline, facts, failing checks, severity reasons, timeline, report link."""
    facts = [
        {"title": "Target", "value": f"{n.target} ({n.platform})"},
        {"title": "Severity", "value": f"{n.sev_label or 'none'} ({n.severity})"},
        {"title": "Release", "value": n.release_name},
        {"title": "Gate", "value": n.verdict},
    ]
    if n.rollback_line:
        facts.append({"title": "Rollback", "value": redact_text(n.rollback_line)})
    body: list[dict[str, Any]] = [
        _text(n.title, size="Large", weight="Bolder", color=COLOURS.get(n.severity, "Default")),
        _text(n.summary, isSubtle=True),
        {"type": "FactSet", "facts": facts},
    ]
    if n.failing_checks:
        body.append(_text("Failing checks", weight="Bolder"))
        body += [_text(f"- {c}") for c in n.failing_checks[:MAX_LISTED_CHECKS]]
    if n.sev_reasons:
        body.append(_text(f"Why {n.sev_label}", weight="Bolder"))
        body += [_text(f"- {r}") for r in n.sev_reasons]
    if n.details:
        body.append(_text("Timeline", weight="Bolder"))
        body.append(_text("\n\n".join(n.details), fontType="Monospace"))
    card: dict[str, Any] = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    if n.report_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Report", "url": n.report_url}]
    return card


def teams_payload(n: Notification) -> dict[str, Any]:
    """The Workflows webhook body: a message with one Adaptive Card attachment."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": ADAPTIVE_CARD_TYPE, "contentUrl": None, "content": adaptive_card(n)}
        ],
    }


@dataclass(frozen=True)
class TeamsChannel:
    webhook_url: str = field(repr=False)
    name: str = "teams"

    def secrets(self) -> tuple[str, ...]:
        """The URL, its path, its query and each query value (the ``sig`` signature)."""
        parts = urlsplit(self.webhook_url)
        values = [value for _, value in parse_qsl(parts.query) if len(value) >= MIN_SECRET_CHARS]
        return tuple(s for s in (self.webhook_url, parts.path, parts.query, *values) if s)

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult:
        return post_json(
            self.name, client, self.webhook_url, teams_payload(notification), self.secrets()
        )
