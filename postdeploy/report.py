"""What a run leaves behind: ``verdict.json``, the terminal summary, report attachments.

``verdict.json`` is what CI reads: per target the gate (passed, failed, inconclusive), why,
the counts, every failing test with its message, and the rollback record.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postdeploy.redact import redact_data

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.gate import TargetResults
    from postdeploy.rollback.controller import RollbackRecord

VERDICT_FILE = "verdict.json"
VERDICT_SCHEMA_VERSION = 1


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def target_verdict(
    target: Target,
    results: TargetResults,
    rollback: RollbackRecord | None,
    serving_version: str | None = None,
) -> dict[str, Any]:
    gate, reason = results.verdict()
    return {
        "platform": target.platform,
        "url": target.url,
        "serving_version": serving_version,
        "gate": str(gate),
        "reason": reason,
        "counts": results.counts(),
        "gating_counts": results.counts(only_gating=True),
        "categories": results.by_category(),
        "failures": [f.to_dict() for f in results.failures],
        "rollback": rollback.to_dict() if rollback else None,
    }


def write_verdict(path: Path, verdict: dict[str, Any]) -> None:
    """Write ``verdict.json`` atomically, with every secret-looking value redacted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(redact_data(verdict), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def summary_lines(verdict: dict[str, Any]) -> list[str]:
    """The terminal summary: one block per target, one row per category."""
    lines: list[str] = []
    header = (
        f"{'target':<10} {'category':<12} {'passed':>6} {'failed':>6} {'broken':>6} {'skipped':>7}"
    )
    lines.append(header)
    lines.append("-" * len(header))
    for name, data in verdict["targets"].items():
        for category, counts in data["categories"].items() or [("-", {})]:
            lines.append(
                f"{name:<10} {category:<12} {counts.get('passed', 0):>6} "
                f"{counts.get('failed', 0):>6} {counts.get('broken', 0):>6} "
                f"{counts.get('skipped', 0):>7}"
            )
        lines.append(f"{name:<10} gate: {data['gate'].upper()} - {data['reason']}")
        rollback = data.get("rollback")
        if rollback and rollback["status"] != "not-needed":
            lines.append(
                f"{name:<10} rollback ({rollback['mode']}): {rollback['status']} - "
                f"{rollback['reason']}"
            )
            for call in rollback.get("calls") or []:
                lines.append(
                    f"{'':<10}   would call: {call}"
                    if rollback["status"] == "dry-run"
                    else f"{'':<10}   called: {call}"
                )
    return lines
