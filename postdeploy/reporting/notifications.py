"""Tell people while the incident happens, then sum the run up.

A :class:`Notifier` lives for one run (or one watch) in the controller process. The rollback
controller calls :meth:`Notifier.rollback_event` the moment it calls the driver
(``rollback-initiated``: what failed, the release it rolls back to) and when the outcome is
known (``rollback-completed`` after a passed verification, or ``rollback-failed``:
escalating); :meth:`Notifier.summary` sends the run's verdict at the end. Verification
sub-runs run with ``--notify off`` and never notify on their own.

Who hears what:

* message channels (Slack, Teams, e-mail, the generic webhook) get every event and the
  summary; the summary is quiet on success (a passing gate with nothing rolled back);
* PagerDuty: one dedup key per target and release. A severity that pages (Sev 1 by default,
  ``[targets.X.severity] page_max_level``) triggers a critical incident - even when the
  rollback then succeeds; verified recovery resolves it; a failed rollback re-triggers it;
  a passing gate resolves any incident open for that release. Sev 2 and Sev 3 never page;
* Statuspage: an incident opened on a Sev 1 with the target's component, updated by later
  events, resolved on verified recovery.

Event deliveries run on a background thread (one after another per target, in order), so a
slow receiver never delays the rollback; the summary waits for them. Nothing here raises:
every delivery is a result recorded in verdict.json ``notifications``.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from postdeploy.reporting.channels import (
    Channel,
    Event,
    Notification,
    PagerDutyChannel,
    UnconfiguredChannel,
    channels_from_config,
    notify,
)
from postdeploy.reporting.incident import incident_lines
from postdeploy.reporting.mail import EmailChannel
from postdeploy.reporting.severity import Assessment, as_list
from postdeploy.reporting.statuspage import STATUSPAGE_API_URL, StatuspageChannel
from postdeploy.reporting.teams import TeamsChannel

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.rollback.controller import RollbackRecord

#: Where the report for this run can be read (CI sets it to the artifact or Pages URL).
REPORT_URL_ENV = "POSTDEPLOY_REPORT_URL"
#: Longest the summary waits for the events still being delivered, per channel.
EVENT_WAIT_PER_CHANNEL_S = 15.0

#: (target name, rollback record as a dict) -> the severity now and the failing checks.
Context = Callable[[str, Mapping[str, Any]], tuple[Assessment, list[str]]]


def backend_lines(failures: list[dict[str, Any]]) -> list[str]:
    """One line per back end that broke checks (the harness's side, not the product's):
    ``"Not judged - Prometheus: unreachable (2 checks)"``."""
    counts: dict[str, int] = {}
    for failure in failures:
        if failure.get("backend"):
            counts[failure["backend"]] = counts.get(failure["backend"], 0) + 1
    return [f"Not judged - {name} ({n} check{'s' if n > 1 else ''})" for name, n in counts.items()]


def _release(release: Any) -> str:
    if isinstance(release, Mapping):
        return str(release.get("version") or release.get("id") or "")
    return ""


def all_channels(
    section: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> list[Channel]:
    """Every channel a ``[targets.X.notify]`` section asks for, secrets from ``environ``; a
    channel named but not usable (a secret unset, a setting missing) is an
    :class:`UnconfiguredChannel` that reports why."""
    environ = os.environ if environ is None else environ
    channels = channels_from_config(section, environ)

    def secret(key: str) -> tuple[str, str]:
        """(the value, or "" and why not) of the env var ``key`` names; ("", "") if unnamed."""
        env_name = str(section.get(key) or "")
        if not env_name:
            return "", ""
        value = environ.get(env_name, "").strip()
        return (value, "") if value else ("", f"${env_name} (from {key}) is not set")

    url, why = secret("teams_webhook_env")
    if url or why:
        channels.append(TeamsChannel(url) if url else UnconfiguredChannel("teams", why))
    if section.get("smtp_host"):
        channels.append(_email(section, secret))
    key, why = secret("statuspage_api_key_env")
    if why:
        channels.append(UnconfiguredChannel("statuspage", why))
    elif key and not section.get("statuspage_page_id"):
        channels.append(UnconfiguredChannel("statuspage", "statuspage_page_id is not set"))
    elif key:
        channels.append(
            StatuspageChannel(
                key,
                page_id=str(section["statuspage_page_id"]),
                component_id=str(section.get("statuspage_component_id") or ""),
                url=str(section.get("statuspage_url") or STATUSPAGE_API_URL),
            )
        )
    return channels


def _email(section: Mapping[str, Any], secret: Callable[[str], tuple[str, str]]) -> Channel:
    recipients = tuple(as_list(section.get("email_to")))
    if not recipients or not section.get("email_from"):
        return UnconfiguredChannel("email", "smtp_host is set but email_from or email_to is not")
    username, why_user = secret("smtp_username_env")
    password, why_password = secret("smtp_password_env")
    if why_user or why_password:
        return UnconfiguredChannel("email", why_user or why_password)
    return EmailChannel(
        host=str(section["smtp_host"]),
        port=int(section.get("smtp_port") or 587),
        sender=str(section["email_from"]),
        recipients=recipients,
        username=username,
        password=password,
        starttls=bool(section.get("smtp_starttls", True)),
        ca_file=str(section.get("smtp_ca_file") or ""),
        timeout_s=float(section.get("timeout_s") or 5.0),
    )


@dataclass
class _TargetState:
    channels: list[Channel]
    timeout_s: float
    pagerduty_touched: bool = False
    pagerduty_open: bool = False
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Notifier:
    """The notifications of one run: events while they happen, then the summary."""

    def __init__(
        self,
        run_id: str,
        *,
        enabled: bool = True,
        report_url: str = "",
        context: Context | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.enabled = enabled
        self.report_url = report_url or os.environ.get(REPORT_URL_ENV, "")
        self.context = context
        self.environ = os.environ if environ is None else environ
        self._targets: dict[str, _TargetState] = {}

    def _state(self, target: Target) -> _TargetState:
        if target.name not in self._targets:
            self._targets[target.name] = _TargetState(
                all_channels(target.notify, self.environ), float(target.notify.timeout_s)
            )
        return self._targets[target.name]

    # -- events, from the rollback controller --------------------------------------------

    def rollback_event(self, target: Target, event: str, record: RollbackRecord) -> None:
        """The controller's listener: ``initiated`` or ``finished``."""
        if not self.enabled:
            return
        rollback = record.to_dict()
        if event == "initiated":
            kind = Event.INITIATED
        elif rollback["status"] == "succeeded":
            kind = Event.COMPLETED
        elif rollback["status"] == "failed" or rollback.get("escalate"):
            kind = Event.FAILED
        else:
            return  # another run holds the lock: it tells people
        assessment, failing = (
            self.context(target.name, rollback) if self.context else (Assessment(), [])
        )
        notification = self._notification(
            target, kind, "failed", failing, rollback, assessment, _release(
                rollback.get("from_release")
            ),
        )  # fmt: skip
        state = self._state(target)
        previous = state.thread

        def deliver() -> None:
            if previous is not None:
                previous.join()
            self._send(state, notification, assessment, summary=False)

        state.thread = threading.Thread(target=deliver, name=f"notify-{target.name}", daemon=True)
        state.thread.start()

    # -- the summary ------------------------------------------------------------------------

    def summary(
        self, target: Target, entry: Mapping[str, Any], assessment: Assessment | None = None
    ) -> list[dict[str, Any]]:
        """Send the run's summary for ``target``; returns every delivery of the run for it."""
        if not self.enabled:
            return []
        state = self._state(target)
        if state.thread is not None:
            state.thread.join(EVENT_WAIT_PER_CHANNEL_S * max(len(state.channels), 1))
        rollback = entry.get("rollback") or {}
        severity = entry.get("severity") or {}
        assessment = assessment or Assessment(
            severity.get("level"), list(severity.get("reasons", [])), bool(severity.get("pages"))
        )
        failures = entry.get("failures", [])
        failing = [f["test"] for f in failures if f.get("gating")] or [f["test"] for f in failures]
        release = _release(rollback.get("from_release")) or str(entry.get("serving_version") or "")
        notification = self._notification(
            target, Event.SUMMARY, entry["gate"], failing, rollback, assessment, release
        )
        notification = dataclasses.replace(notification, canary=canary_lines(entry))
        broken_by = backend_lines(failures)
        if broken_by:
            notification = dataclasses.replace(
                notification, details=(*broken_by, *notification.details)
            )
        self._send(state, notification, assessment, summary=True)
        with state.lock:
            return list(state.deliveries)

    # -- the parts ----------------------------------------------------------------------------

    def _notification(
        self,
        target: Target,
        event: Event,
        verdict: str,
        failing: list[str],
        rollback: Mapping[str, Any],
        assessment: Assessment,
        release: str,
    ) -> Notification:
        return Notification(
            target=target.name,
            platform=target.platform,
            url=target.url,
            verdict=verdict,
            failing_checks=failing,
            rollback=rollback,
            report_url=self.report_url,
            release=release,
            run_id=self.run_id,
            event=event,
            sev=assessment.level,
            sev_reasons=assessment.reasons,
            details=incident_lines(rollback),
        )

    def _pagerduty_action(
        self, state: _TargetState, n: Notification, assessment: Assessment
    ) -> str:
        if n.event == Event.INITIATED:
            return "trigger" if assessment.pages else ""
        if n.event == Event.FAILED:
            return "trigger" if assessment.pages or state.pagerduty_open else ""
        if n.event == Event.COMPLETED:
            return "resolve" if state.pagerduty_open else ""
        if state.pagerduty_touched:
            return ""  # the events of this run already told PagerDuty
        if assessment.pages:
            return "trigger"
        return "resolve" if n.verdict == "passed" and assessment.level is None else ""

    def _send(
        self, state: _TargetState, n: Notification, assessment: Assessment, *, summary: bool
    ) -> None:
        rollback = n.rollback
        quiet = summary and n.verdict == "passed" and rollback.get("status") in (
            None, "not-needed",
        )  # fmt: skip
        chosen: list[Channel] = []
        action = ""
        for channel in state.channels:
            if isinstance(channel, PagerDutyChannel):
                action = self._pagerduty_action(state, n, assessment)
                if action:
                    chosen.append(channel)
            elif isinstance(channel, StatuspageChannel):
                if channel.wants(n):
                    chosen.append(channel)
            elif not quiet and (summary or not isinstance(channel, UnconfiguredChannel)):
                chosen.append(channel)
        if action:
            n = dataclasses.replace(n, pagerduty_action=action)
            state.pagerduty_touched = True
            state.pagerduty_open = action == "trigger"
        if not chosen:
            return
        results = notify(n, chosen, timeout_s=state.timeout_s)
        with state.lock:
            state.deliveries += [
                {"event": str(n.event), "channel": r.channel, "ok": r.ok, "message": r.message}
                for r in results
            ]


def canary_lines(entry: Mapping[str, Any]) -> list[str]:
    """The canary judge's regressions of a verdict entry, one line each."""
    return [
        metric["summary"]
        for judgement in entry.get("canary") or []
        for metric in judgement.get("metrics", [])
        if metric.get("classification") == "regression"
    ]


def announce(
    target: Target, entry: dict[str, Any], run_id: str, report_url: str = ""
) -> list[dict[str, Any]]:
    """The summary alone, for a run without events (a watch that did not roll back)."""
    return Notifier(run_id, report_url=report_url).summary(target, entry)
