"""What a run leaves behind: ``verdict.json`` and the terminal summary.

``verdict.json`` is what CI reads: per target the gate (passed, failed, inconclusive), why,
the counts, every failing test with its message, flaky and quarantined checks, the incident
severity (``postdeploy.reporting.severity``) and the rollback record with its timeline,
objectives, availability and evidence. ``schemas/verdict.schema.json`` documents every field.

The terminal summary is built from the verdict alone (no I/O, no extra pass over the tests),
so it adds nothing measurable to a run (``benchmarks/bench_report.py``).

Evidence for the report is attached through ``postdeploy.reporting.attachments``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postdeploy.redact import redact_data, redact_text, redact_url
from postdeploy.reporting.incident import incident_lines
from postdeploy.reporting.severity import assess_results

if TYPE_CHECKING:
    from collections.abc import Iterable

    from postdeploy.config import Target
    from postdeploy.gate import TargetResults
    from postdeploy.rollback.controller import RollbackRecord

VERDICT_FILE = "verdict.json"
VERDICT_SCHEMA_VERSION = 1
#: The schema of verdict.json, relative to the repository root.
VERDICT_SCHEMA = Path("schemas") / "verdict.schema.json"
#: Category column width and the counts shown per row in the terminal summary.
SUMMARY_COUNTS = ("passed", "failed", "broken", "skipped")
#: Longest first-failure text shown per flaky check in the terminal summary.
SUMMARY_MESSAGE_CHARS = 160


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def target_verdict(
    target: Target,
    results: TargetResults,
    rollback: RollbackRecord | None,
    serving_version: str | None = None,
) -> dict[str, Any]:
    gate, reason = results.verdict()
    reruns = [
        {
            "test": nodeid,
            "attempts": attempts,
            "outcome": str(results.outcomes.get(nodeid, "passed")),
            "first_failure": first_failure,
            "gating": nodeid in results.gating,
            "quarantined": nodeid in results.quarantined,
        }
        for nodeid, (attempts, first_failure) in sorted(results.reruns.items())
    ]
    return {
        "platform": target.platform,
        "url": redact_url(target.url),
        "serving_version": serving_version,
        "gate": str(gate),
        "reason": reason,
        "counts": results.counts(),
        "gating_counts": results.counts(only_gating=True),
        "categories": results.by_category(),
        "failures": [f.to_dict() for f in results.failures],
        "flaky": results.flaky(),
        "reruns": reruns,
        "quarantined": [
            {"test": nodeid, "entry": entry, "outcome": str(results.outcomes.get(nodeid, ""))}
            for nodeid, entry in sorted(results.quarantined.items())
        ],
        "rollback": rollback.to_dict() if rollback else None,
        "canary": results.canary,
        "severity": assess_results(
            target, results, rollback.to_dict() if rollback else None
        ).to_dict(),
    }


def scrub_data(value: Any, secrets: tuple[str, ...]) -> Any:
    """``secrets`` out of every string of a JSON value (already through ``redact_data``)."""
    if not secrets:
        return value
    if isinstance(value, dict):
        return {k: scrub_data(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_data(v, secrets) for v in value]
    if isinstance(value, str) and any(secret in value for secret in secrets):
        return redact_text(value, secrets)
    return value


def verdict_document(
    *,
    run_id: str,
    started_at: str,
    rollback_mode: str,
    expect_version: str | None,
    exit_status: int,
    source: str,
    targets: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """The top level of ``verdict.json`` (schemas/verdict.schema.json), for a run or a watch."""
    return {
        "schema_version": VERDICT_SCHEMA_VERSION,
        "run_id": run_id,
        "started_at": started_at,
        "finished_at": now(),
        "rollback_mode": rollback_mode,
        "expect_version": expect_version,
        "exit_status": exit_status,
        "source": source,
        **extra,
        "targets": targets,
    }


def write_verdict(path: Path, verdict: dict[str, Any], secrets: Iterable[str] = ()) -> None:
    """Write ``verdict.json`` atomically, with every secret-looking value redacted, and every
    one of ``secrets`` (the values this run knows to be secret) wherever it appears."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    clean = scrub_data(redact_data(verdict), tuple(secrets))
    tmp.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _rollback_lines(name: str, data: dict[str, Any], mode: str) -> list[str]:
    rollback = data.get("rollback") or {}
    status = rollback.get("status", "not-needed")
    pad = f"{'':<10}"
    if status == "not-needed":
        if data["gate"] == "failed" and mode == "off":
            return [f"{name:<10} rollback: off - nothing was rolled back (--rollback auto would)"]
        return [f"{name:<10} rollback: not needed"]
    lines = [f"{name:<10} rollback ({rollback['mode']}): {status} - {rollback['reason']}"]
    verb = "would call" if status == "dry-run" else "called"
    lines += [f"{pad}   {verb}: {call}" for call in rollback.get("calls") or []]
    verification = rollback.get("verification") or {}
    if verification.get("status"):
        lines.append(f"{pad}   verification: {verification['status']}")
    lines += [f"{pad}   {line}" for line in incident_lines(rollback)]
    return lines


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_MESSAGE_CHARS else text[: SUMMARY_MESSAGE_CHARS - 3] + "..."


def summary_lines(verdict: dict[str, Any], secrets: Iterable[str] = ()) -> list[str]:
    """The terminal summary: per target a row per category, the gate, the rollback, and the
    checks that were flaky or quarantined; redacted, and without any of ``secrets``."""
    header = f"{'target':<10} {'category':<12}" + "".join(f" {c:>7}" for c in SUMMARY_COUNTS)
    lines = [header, "-" * len(header)]
    mode = verdict.get("rollback_mode", "off")
    for name, data in verdict["targets"].items():
        rows = list(data["categories"].items())
        if len(rows) != 1:
            rows.append(("total", data["counts"]))
        for category, counts in rows:
            lines.append(
                f"{name:<10} {category:<12}"
                + "".join(f" {counts.get(c, 0):>7}" for c in SUMMARY_COUNTS)
            )
        lines.append(f"{name:<10} gate: {data['gate'].upper()} - {data['reason']}")
        severity = data.get("severity") or {}
        if severity.get("level"):
            pages = "pages" if severity.get("pages") else "does not page"
            why = "; ".join(severity.get("reasons", [])[:3])
            lines.append(f"{name:<10} severity: {severity['label']} ({pages}) - {why}")
        lines += _rollback_lines(name, data, mode)
        for judgement in data.get("canary") or []:
            lines += [
                f"{name:<10} canary regression: {metric['summary']}"
                for metric in judgement.get("metrics", [])
                if metric.get("classification") == "regression"
            ]
        reruns = {r["test"]: r for r in data.get("reruns", [])}
        for test in data.get("flaky", []):
            rerun = reruns.get(test, {})
            lines.append(
                f"{name:<10} flaky: {test} passed on attempt {rerun.get('attempts', '?')}; "
                f"first failure: {_short(rerun.get('first_failure', ''))}"
            )
        for entry in data.get("quarantined", []):
            lines.append(
                f"{name:<10} quarantined (reported, never gates): {entry['test']} "
                f"{entry['outcome'] or 'not run'}"
            )
    quarantine = verdict.get("quarantine") or {}
    for unused in quarantine.get("unused", []):
        lines.append(f"quarantine: {unused} matched no collected check")
    secrets = tuple(secrets)
    return [redact_text(line, secrets) for line in lines]
