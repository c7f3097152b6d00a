"""Turn a target's verdict into the one notification of the run, and send it.

Quiet on success: a passing gate with nothing rolled back only resolves an open PagerDuty
incident for that target and release; everything else (failed or inconclusive gate, any
rollback or dry run) goes to every configured channel, critical when a rollback or its
verification failed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from postdeploy.reporting.channels import (
    Notification,
    PagerDutyChannel,
    channels_from_config,
    notify,
)

if TYPE_CHECKING:
    from postdeploy.config import Target

#: Where the report for this run can be read (CI sets it to the artifact or Pages URL).
REPORT_URL_ENV = "POSTDEPLOY_REPORT_URL"


def announce(
    target: Target, entry: dict[str, Any], run_id: str, report_url: str = ""
) -> list[dict[str, Any]]:
    """Notify about one target's verdict entry; returns the delivery results, safe to record."""
    channels = channels_from_config(target.notify)
    rollback = entry.get("rollback") or {}
    quiet = entry["gate"] == "passed" and rollback.get("status") in (None, "not-needed")
    if quiet:
        channels = [c for c in channels if isinstance(c, PagerDutyChannel)]
    if not channels:
        return []
    notification = Notification(
        target=target.name,
        platform=target.platform,
        url=target.url,
        verdict=entry["gate"],
        failing_checks=[f["test"] for f in entry.get("failures", []) if f.get("gating")]
        or [f["test"] for f in entry.get("failures", [])],
        rollback=rollback,
        report_url=report_url or os.environ.get(REPORT_URL_ENV, ""),
        release=entry.get("serving_version") or "",
        run_id=run_id,
        canary=[
            metric["summary"]
            for judgement in entry.get("canary") or []
            for metric in judgement.get("metrics", [])
            if metric.get("classification") == "regression"
        ],
    )
    results = notify(notification, channels, timeout_s=target.notify.timeout_s)
    return [{"channel": r.channel, "ok": r.ok, "message": r.message} for r in results]
