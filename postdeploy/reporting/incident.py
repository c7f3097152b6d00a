"""The incident's story in lines: the rollback timeline, the objectives, the availability.

One rendering, used by the terminal summary, every notification and the evidence attached to
the report, so they all tell the same thing (``RollbackRecord.to_dict()`` is the input).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PERCENT = 100.0


def _time(at: str) -> str:
    """``2026-11-28T22:41:03.120+00:00`` -> ``22:41:03.120Z``."""
    clock = at.split("T", 1)[-1]
    return clock.split("+", 1)[0] + "Z" if "+" in clock else clock


def timeline_lines(rollback: Mapping[str, Any] | None) -> list[str]:
    """``detected 22:41:03.120Z (+0.000 s)`` ... one line per event."""
    lines = []
    for step in (rollback or {}).get("timeline") or []:
        extra = {k: v for k, v in step.items() if k not in ("event", "at", "t_s")}
        note = " ".join(f"{k}={v}" for k, v in extra.items())
        lines.append(
            f"{step['event']:<9} {_time(str(step['at']))} (+{float(step['t_s']):.3f} s)"
            + (f" {note}" if note else "")
        )
    return lines


def objective_lines(rollback: Mapping[str, Any] | None) -> list[str]:
    objectives = (rollback or {}).get("objectives")
    if not objectives:
        return []
    lines = []
    for what, key in (("rollback", "rollback"), ("recovery", "recovery")):
        took = objectives.get(f"{key}_s")
        limit = objectives.get(f"{key}_objective_s")
        verdict = "met" if objectives.get(f"{key}_met") else "MISSED"
        shown = "-" if took is None else f"{took:.1f} s"
        lines.append(f"{what} time {shown} (objective {limit:.0f} s): {verdict}")
    return lines


def availability_line(rollback: Mapping[str, Any] | None) -> str:
    availability = (rollback or {}).get("availability")
    if not availability:
        return ""
    share = availability.get("availability")
    shown = "no probe answered or sent" if share is None else f"{share * PERCENT:.1f} %"
    verdict = "met" if availability.get("met") else "MISSED"
    return (
        f"availability during the rollback {shown} ({availability.get('answered', 0)}/"
        f"{availability.get('sent', 0)} answered correctly), longest gap "
        f"{availability.get('longest_gap_s', 0):.1f} s (objective "
        f"{availability.get('objective', 0) * PERCENT:.1f} %): {verdict}"
    )


def incident_lines(rollback: Mapping[str, Any] | None) -> list[str]:
    """Timeline, objectives and availability: the section of a report or a notification."""
    lines = timeline_lines(rollback)
    lines += objective_lines(rollback)
    if line := availability_line(rollback):
        lines.append(line)
    evidence = (rollback or {}).get("evidence") or {}
    if evidence.get("file"):
        lines.append(
            f"evidence: {evidence.get('lines', 0)} log lines of release "
            f"{evidence.get('release')} at {evidence['file']}"
        )
    return lines
