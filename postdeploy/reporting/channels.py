"""Tell people what happened to a target: Slack, PagerDuty Events API v2, a generic webhook
(Microsoft Teams, e-mail and Statuspage live in ``teams.py``, ``mail.py``, ``statuspage.py``).

A :class:`Notification` carries one event of a target's incident - ``rollback-initiated``,
``rollback-completed``, ``rollback-failed`` or the run's ``summary`` - with the gate verdict,
the failing checks, the rollback record (``RollbackRecord.to_dict()``), the incident severity
(Sev 1-3, ``postdeploy.reporting.severity``), the timeline and objective lines, and a link to
the report. Its event severity is given by the Sev level when there is one; otherwise it is
``critical`` when a rollback or its verification failed (or the controller asked to escalate),
``warning`` when the gate did not pass, ``info`` otherwise.

The webhook URLs and the routing key are secrets: configuration names the env vars that hold
them (``[targets.X.notify]``: ``slack_webhook_env``, ``pagerduty_routing_key_env``,
``webhook_url_env``, plus ``pagerduty_url`` and ``timeout_s``), and no result message or log
line carries a URL path or a key - only the receiving host.

:func:`notify` never raises: each channel's delivery comes back as a :class:`DeliveryResult`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from postdeploy.redact import public_host, redact_data, redact_text

log = logging.getLogger("postdeploy.reporting.channels")

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_TIMEOUT_S = 5.0
#: Tries of one delivery when the receiver answers 429 or 5xx, or cannot be reached.
MAX_ATTEMPTS = 2
#: Longest Retry-After honoured between two tries.
MAX_RETRY_AFTER_S = 2.0
#: PagerDuty's limits (Events API v2): summary and dedup_key lengths.
PD_SUMMARY_MAX = 1024
PD_DEDUP_KEY_MAX = 255
#: Slack Block Kit limits: header text and section text.
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
#: Failing checks listed by name in a message.
MAX_LISTED_CHECKS = 10
MAX_QUOTED_CHARS = 200
USER_AGENT = "postdeploy-notify"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Event(StrEnum):
    """What a notification announces."""

    INITIATED = "rollback-initiated"
    COMPLETED = "rollback-completed"
    FAILED = "rollback-failed"
    SUMMARY = "summary"


#: The headline of each event (the plan's "CRITICAL: emergency rollback initiated" for Sev 1).
EVENT_TITLES = {
    Event.INITIATED: "rollback initiated",
    Event.COMPLETED: "rollback completed, verification passed",
    Event.FAILED: "rollback FAILED, escalating",
}


def severity_of(verdict: str, rollback: Mapping[str, Any]) -> Severity:
    """critical: a rollback or its verification failed, or escalation was asked for."""
    verification = rollback.get("verification") or {}
    if (
        rollback.get("escalate")
        or rollback.get("status") == "failed"
        or verification.get("status") == "failed"
    ):
        return Severity.CRITICAL
    if verdict != "passed":
        return Severity.WARNING
    return Severity.INFO


def _release_name(release: Any) -> str:
    if isinstance(release, Mapping):
        return str(release.get("version") or release.get("id") or "")
    return str(release or "")


@dataclass(frozen=True)
class Notification:
    """What one target's run comes to, as people are told it."""

    target: str
    platform: str
    url: str
    #: the gate verdict: passed, failed or inconclusive
    verdict: str
    failing_checks: Sequence[str] = ()
    #: the rollback record of the run (``RollbackRecord.to_dict()``), empty when none
    rollback: Mapping[str, Any] = field(default_factory=dict)
    report_url: str = ""
    #: the release under validation; with the target it makes the PagerDuty dedup key
    release: str = ""
    run_id: str = ""
    #: computed from the verdict and the rollback (or from ``sev``) when not given
    severity: str = ""
    #: the canary judge's regressions, one line each (metric, arms, effect, interval, p)
    canary: Sequence[str] = ()
    event: str = Event.SUMMARY
    #: the incident severity level (1-3), None when there is no incident
    sev: int | None = None
    #: why the severity is what it is
    sev_reasons: Sequence[str] = ()
    #: the timeline, objective and availability lines (``postdeploy.reporting.incident``)
    details: Sequence[str] = ()
    #: PagerDuty: ``trigger`` or ``resolve``; empty: decided from the verdict and severity
    pagerduty_action: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "failing_checks", tuple(self.failing_checks))
        object.__setattr__(self, "canary", tuple(self.canary))
        object.__setattr__(self, "rollback", dict(self.rollback))
        object.__setattr__(self, "sev_reasons", tuple(self.sev_reasons))
        object.__setattr__(self, "details", tuple(self.details))
        if not self.severity and self.sev:
            from postdeploy.reporting.severity import EVENT_SEVERITY

            object.__setattr__(self, "severity", EVENT_SEVERITY.get(self.sev, "info"))
        if not self.severity:
            object.__setattr__(self, "severity", str(severity_of(self.verdict, self.rollback)))
        if self.severity not in tuple(Severity):
            raise ValueError(
                f"severity must be one of {', '.join(Severity)}, not {self.severity!r}"
            )

    @property
    def release_name(self) -> str:
        return self.release or _release_name(self.rollback.get("from_release")) or "unknown"

    @property
    def dedup_key(self) -> str:
        """One PagerDuty incident per target and release."""
        return f"postdeploy/{self.target}/{self.release_name}"[:PD_DEDUP_KEY_MAX]

    @property
    def rollback_line(self) -> str:
        status = str(self.rollback.get("status") or "")
        if not status or status == "not-needed":
            return ""
        from_, to = (_release_name(self.rollback.get(k)) for k in ("from_release", "to_release"))
        reason = str(self.rollback.get("reason") or "")
        if status == "succeeded":
            return f"rolled back from {from_ or '?'} to {to or '?'}; health checks pass"
        if status == "dry-run":
            return f"dry run: would roll back from {from_ or '?'} to {to or '?'}"
        if status == "skipped":
            return redact_text(f"rollback skipped: {reason}")
        return redact_text(f"ROLLBACK FAILED: {reason or 'no reason recorded'}")

    @property
    def sev_label(self) -> str:
        return f"Sev {self.sev}" if self.sev else ""

    @property
    def title(self) -> str:
        """The headline: the event, or the gate for a summary."""
        if self.event == Event.SUMMARY:
            return f"{self.target}: gate {self.verdict}"
        title = EVENT_TITLES.get(Event(self.event), str(self.event))
        if self.event == Event.INITIATED and self.sev == 1:
            title = "CRITICAL: emergency rollback initiated"
        return f"{self.target}: {title}"

    @property
    def summary(self) -> str:
        checks = len(self.failing_checks)
        gate = f"gate {self.verdict}" + (
            f" ({checks} failing check{'s' * (checks != 1)})" if checks else ""
        )
        label = f"{self.sev_label} " if self.sev else ""
        head = f"[{label}{self.severity.upper()}] {self.target} ({self.platform})"
        parts = [f"{head}: {gate}"]
        if self.event != Event.SUMMARY:
            parts = [f"{head}: {self.title.split(': ', 1)[1]}", gate]
        if self.rollback_line and self.event in (Event.SUMMARY, Event.FAILED, Event.COMPLETED):
            parts.append(self.rollback_line)
        elif self.event == Event.INITIATED:
            to = _release_name(self.rollback.get("to_release"))
            parts.append(f"rolling back {self.release_name} to {to or '?'}")
        return redact_text(" - ".join(parts))[:PD_SUMMARY_MAX]

    @property
    def text(self) -> str:
        """The whole message as plain text: summary, checks, severity reasons, details."""
        lines = [self.summary]
        if self.failing_checks:
            lines += ["", "Failing checks:"]
            lines += [f"  - {c}" for c in self.failing_checks[:MAX_LISTED_CHECKS]]
        if self.sev_reasons:
            lines += ["", f"{self.sev_label}:"] + [f"  - {r}" for r in self.sev_reasons]
        if self.details:
            lines += ["", *self.details]
        if self.report_url:
            lines += ["", f"Report: {self.report_url}"]
        if self.run_id:
            lines += ["", f"postdeploy run {self.run_id}"]
        return redact_text("\n".join(lines))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failing_checks"] = list(self.failing_checks)
        data["canary"] = list(self.canary)
        data["sev_reasons"] = list(self.sev_reasons)
        data["details"] = list(self.details)
        data.update(summary=self.summary, dedup_key=self.dedup_key)
        return data


@dataclass(frozen=True)
class DeliveryResult:
    """How one channel's delivery went; ``message`` is safe to print (no URL path, no key)."""

    channel: str
    ok: bool
    message: str
    status_code: int | None = None
    attempts: int = 0


class Channel(Protocol):
    """Somewhere a notification goes."""

    @property
    def name(self) -> str:
        """The channel's kind, as results and logs name it."""

    def secrets(self) -> tuple[str, ...]:
        """What must never be printed: the URL (path) or key this channel holds."""

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult: ...


class _ScrubInFlightSecrets(logging.Filter):
    """Scrubs the secrets of deliveries in flight from httpx's log (it logs each full URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            scrubbed = redact_text(message, self.secrets)
            if scrubbed != message:
                record.msg, record.args = scrubbed, None
        return True


_SCRUB = _ScrubInFlightSecrets()
logging.getLogger("httpx").addFilter(_SCRUB)


def _host(url: str) -> str:
    """Host and port of ``url`` for messages; never its userinfo (a webhook's credentials)."""
    return public_host(url)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "0")), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return 0.0


def post_json(
    channel: str,
    client: httpx.Client,
    url: str,
    payload: Mapping[str, Any],
    secrets: Sequence[str],
    ok_statuses: frozenset[int] = frozenset(),
) -> DeliveryResult:
    """POST ``payload``; retries 429, 5xx and refused connections once; never raises."""
    host = _host(url)
    if urlsplit(url).scheme not in ("http", "https"):
        return DeliveryResult(channel, False, f"{channel}: the configured URL is not http(s)")
    attempts = 0
    message = ""
    for attempts in range(1, MAX_ATTEMPTS + 1):
        try:
            response = client.post(url, json=dict(payload), headers={"User-Agent": USER_AGENT})
        except httpx.TimeoutException:
            within = f" within {client.timeout.read:g} s" if client.timeout.read else ""
            message = f"{channel}: no answer from {host}{within}; not retried"
            return DeliveryResult(channel, False, message, attempts=attempts)
        except httpx.TransportError as exc:
            message = f"{channel}: could not reach {host} ({type(exc).__name__})"
            continue
        if response.is_success or response.status_code in ok_statuses:
            return DeliveryResult(
                channel, True, f"{channel}: delivered to {host} ({response.status_code})",
                response.status_code, attempts,
            )  # fmt: skip
        said = redact_text(" ".join(response.text.split())[:MAX_QUOTED_CHARS], secrets)
        message = f"{channel}: {host} answered {response.status_code} {response.reason_phrase}" + (
            f': "{said}"' if said else ""
        )
        if response.status_code == 429 or response.is_server_error:
            time.sleep(_retry_after(response))
            continue
        return DeliveryResult(channel, False, message, response.status_code, attempts)
    return DeliveryResult(channel, False, f"{message} (after {attempts} tries)", None, attempts)


# -- the channels -------------------------------------------------------------------------------


def _emoji(severity: str) -> str:
    return {"critical": ":rotating_light:", "warning": ":warning:"}.get(
        severity, ":white_check_mark:"
    )


def slack_payload(n: Notification) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` (the fallback) and Block Kit ``blocks``."""
    header = n.title[:SLACK_HEADER_MAX]
    facts = [
        f"*Target*\n<{n.url}|{n.target}> ({n.platform})",
        f"*Severity*\n{(n.sev_label + ' - ') if n.sev else ''}{n.severity}",
        f"*Release*\n{n.release_name}",
        f"*Verdict*\n{n.verdict}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
    ]
    if n.failing_checks:
        listed = "\n".join(f"• `{c}`" for c in n.failing_checks[:MAX_LISTED_CHECKS])
        more = len(n.failing_checks) - MAX_LISTED_CHECKS
        listed += f"\n…and {more} more" if more > 0 else ""
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": f"*Failing checks*\n{listed}"[:SLACK_SECTION_MAX],
        }})  # fmt: skip
    if n.canary:
        listed = "\n".join(f"• {line}" for line in n.canary[:MAX_LISTED_CHECKS])
        more = len(n.canary) - MAX_LISTED_CHECKS
        listed += f"\n…and {more} more" if more > 0 else ""
        text = f"*Canary regressions*\n{listed}"[:SLACK_SECTION_MAX]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if n.rollback_line:
        rollback = f"*Rollback*\n{n.rollback_line}"[:SLACK_SECTION_MAX]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": rollback}})
    if n.details:
        details = "*Timeline*\n```" + "\n".join(n.details) + "```"
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": redact_text(details)[:SLACK_SECTION_MAX],
        }})  # fmt: skip
    context = f"run {n.run_id}" if n.run_id else "postdeploy"
    if n.report_url:
        context += f" · <{n.report_url}|report>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": f"{_emoji(n.severity)} {n.summary}", "blocks": blocks}


def pagerduty_event(n: Notification, routing_key: str) -> dict[str, Any]:
    """An Events API v2 event: ``n.pagerduty_action`` when given; else ``resolve`` when the
    gate passed, ``trigger`` otherwise."""
    resolve = n.pagerduty_action == "resolve" or (
        not n.pagerduty_action and n.verdict == "passed" and n.severity == Severity.INFO
    )
    if resolve:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": n.dedup_key}
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "payload": {
            "summary": n.summary,
            "source": _host(n.url) if n.url else n.target,
            "severity": n.severity,
            "component": n.target,
            "group": n.platform,
            "class": "post-deployment gate",
            "custom_details": {
                "event": str(n.event),
                "incident_severity": n.sev_label or "none",
                "severity_reasons": list(n.sev_reasons),
                "timeline": list(n.details),
                "verdict": n.verdict,
                "failing_checks": list(n.failing_checks),
                "canary_regressions": list(n.canary),
                "rollback": n.rollback_line or "none",
                "release": n.release_name,
                "run_id": n.run_id,
            },
        },
        "client": "postdeploy",
    }
    if n.report_url:
        event["client_url"] = n.report_url
        event["links"] = [{"href": n.report_url, "text": "postdeploy report"}]
    return event


@dataclass(frozen=True)
class SlackChannel:
    webhook_url: str = field(repr=False)
    name: str = "slack"

    def secrets(self) -> tuple[str, ...]:
        return (self.webhook_url, urlsplit(self.webhook_url).path)

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult:
        return post_json(
            self.name, client, self.webhook_url, slack_payload(notification), self.secrets()
        )


@dataclass(frozen=True)
class PagerDutyChannel:
    routing_key: str = field(repr=False)
    url: str = PAGERDUTY_EVENTS_URL
    name: str = "pagerduty"

    def secrets(self) -> tuple[str, ...]:
        return (self.routing_key,)

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult:
        return post_json(
            self.name, client, self.url, pagerduty_event(notification, self.routing_key),
            self.secrets(), ok_statuses=frozenset({202}),
        )  # fmt: skip


@dataclass(frozen=True)
class WebhookChannel:
    url: str = field(repr=False)
    name: str = "webhook"

    def secrets(self) -> tuple[str, ...]:
        return (self.url, self.url.split(_host(self.url), 1)[-1])

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult:
        event = notification.event
        kind = "postdeploy.verdict" if event == Event.SUMMARY else f"postdeploy.{event}"
        payload = {**redact_data(notification.to_dict()), "event": kind}
        return post_json(self.name, client, self.url, payload, self.secrets())


@dataclass(frozen=True)
class UnconfiguredChannel:
    """A channel the configuration names but whose secret is missing: reports it, sends nothing."""

    name: str
    reason: str

    def secrets(self) -> tuple[str, ...]:
        return ()

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult:
        return DeliveryResult(self.name, False, f"{self.name}: not sent: {self.reason}")


def channels_from_config(
    section: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> list[Channel]:
    """The channels a ``[targets.X.notify]`` section asks for, with secrets from ``environ``."""
    environ = os.environ if environ is None else environ
    channels: list[Channel] = []

    def secret(key: str, name: str) -> str | None:
        env_name = str(section.get(key) or "")
        if not env_name:
            return None
        value = environ.get(env_name, "").strip()
        if not value:
            channels.append(UnconfiguredChannel(name, f"${env_name} (from {key}) is not set"))
            return None
        return value

    if url := secret("slack_webhook_env", "slack"):
        channels.append(SlackChannel(url))
    if key := secret("pagerduty_routing_key_env", "pagerduty"):
        channels.append(
            PagerDutyChannel(key, str(section.get("pagerduty_url") or PAGERDUTY_EVENTS_URL))
        )
    if url := secret("webhook_url_env", "webhook"):
        channels.append(WebhookChannel(url))
    return channels


def notify(
    notification: Notification,
    channels: Sequence[Channel],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.BaseTransport | None = None,
) -> list[DeliveryResult]:
    """Send ``notification`` to every channel; failures come back as results, never raised."""
    results: list[DeliveryResult] = []
    secrets = [s for channel in channels for s in channel.secrets() if s]
    _SCRUB.secrets.extend(secrets)
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport) as client:
            for channel in channels:
                results.append(_deliver(notification, channel, client))
    finally:
        for secret in secrets:
            _SCRUB.secrets.remove(secret)
    return results


def _deliver(notification: Notification, channel: Channel, client: httpx.Client) -> DeliveryResult:
    try:
        result = channel.send(notification, client)
    except Exception as exc:  # a channel bug must not stop the others or the run
        result = DeliveryResult(channel.name, False, f"{channel.name}: {type(exc).__name__}")
    level = logging.INFO if result.ok else logging.WARNING
    log.log(level, "notification for %s: %s", notification.target, result.message)
    return result
