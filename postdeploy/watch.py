"""The automatic-rollback monitor: ``postdeploy watch``.

For a bounded time after a deploy it probes the health route and the key endpoints every
interval. A probe is an error when the target does not answer, answers 5xx, reports itself
unhealthy, or answers slower than the latency threshold. When the errors reach the threshold
the target's gate has failed: the monitor rolls it back through the same controller, driver
and safety rules as a test run (once, lock, cooldown, verification), writes the same
``verdict.json`` and audit records, and notifies.

Defaults come from the operations plan: 5 errors, 5000 ms, a 30 s interval, and its
environment variables override them when set (``ROLLBACK_ERROR_THRESHOLD``,
``ROLLBACK_RESPONSE_TIME_THRESHOLD`` in ms, ``ROLLBACK_MONITORING_INTERVAL`` - or the plan's
script's ``ROLLBACK_CHECK_INTERVAL`` - in seconds or as a duration); command-line options
override both. People are told while it happens (``postdeploy.reporting.notifications``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from postdeploy.contract import PATHS
from postdeploy.gate import Outcome, TargetResults
from postdeploy.http import new_client
from postdeploy.reporting.verdict import (
    VERDICT_FILE,
    now,
    target_verdict,
    verdict_document,
    write_verdict,
)
from postdeploy.rollback import lifecycle_of
from postdeploy.rollback.controller import (
    AUDIT_FILE,
    AuditLog,
    Mode,
    RollbackController,
    RollbackRecord,
    Verifier,
)

if TYPE_CHECKING:
    from postdeploy.config import Target

DEFAULT_DURATION_S = 600.0
DEFAULT_INTERVAL_S = 30.0
DEFAULT_ERROR_THRESHOLD = 5
DEFAULT_LATENCY_THRESHOLD_MS = 5000.0
#: The operations plan's environment variables, read as defaults.
ERROR_THRESHOLD_ENV = "ROLLBACK_ERROR_THRESHOLD"
RESPONSE_TIME_THRESHOLD_ENV = "ROLLBACK_RESPONSE_TIME_THRESHOLD"
INTERVAL_ENVS = ("ROLLBACK_MONITORING_INTERVAL", "ROLLBACK_CHECK_INTERVAL")
#: What one round probes: the health route first, then the key endpoints.
PROBES = (PATHS.health, PATHS.content, PATHS.page_home)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """``"10m"`` -> 600.0; a bare number is seconds. Raises ValueError with the fix."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 10m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def env_defaults(environ: Mapping[str, str] | None = None) -> dict[str, float]:
    """The plan's ``ROLLBACK_*`` variables as watch defaults; raises ValueError naming the
    variable and the fix when one is not a number."""
    environ = os.environ if environ is None else environ
    defaults: dict[str, float] = {
        "error_threshold": DEFAULT_ERROR_THRESHOLD,
        "latency_threshold_ms": DEFAULT_LATENCY_THRESHOLD_MS,
        "interval_s": DEFAULT_INTERVAL_S,
    }
    raw = environ.get(ERROR_THRESHOLD_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"${ERROR_THRESHOLD_ENV}={raw!r} must be a whole number, at least 1")
        defaults["error_threshold"] = int(raw)
    raw = environ.get(RESPONSE_TIME_THRESHOLD_ENV, "").strip()
    if raw:
        try:
            defaults["latency_threshold_ms"] = float(raw)
        except ValueError:
            raise ValueError(
                f"${RESPONSE_TIME_THRESHOLD_ENV}={raw!r} must be milliseconds, e.g. 5000"
            ) from None
    for name in INTERVAL_ENVS:
        raw = environ.get(name, "").strip()
        if raw:
            try:
                defaults["interval_s"] = parse_duration(raw)
            except ValueError as exc:
                raise ValueError(f"${name}: {exc}") from None
            break
    return defaults


@dataclass(frozen=True)
class WatchSettings:
    duration_s: float = DEFAULT_DURATION_S
    interval_s: float = DEFAULT_INTERVAL_S
    error_threshold: int = DEFAULT_ERROR_THRESHOLD
    latency_threshold_ms: float = DEFAULT_LATENCY_THRESHOLD_MS

    @property
    def max_requests(self) -> int:
        """The most requests a watch may send: every probe, every round, nothing more."""
        rounds = int(self.duration_s // self.interval_s) + 1
        return rounds * len(PROBES)


@dataclass
class WatchResult:
    results: TargetResults
    rollback: RollbackRecord | None
    requests: int
    rounds: int
    verdict: dict[str, Any]


def probe(client: httpx.Client, path: str, latency_threshold_ms: float) -> str:
    """An empty string when the probe is fine, else why it is an error."""
    started = time.perf_counter()
    try:
        response = client.get(path)
    except httpx.HTTPError as exc:
        return f"GET {path}: no answer ({type(exc).__name__})"
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code >= 500:
        return f"GET {path}: HTTP {response.status_code}"
    if path == PATHS.health:
        try:
            status = response.json().get("status")
        except ValueError:
            status = None
        if response.status_code != 200 or status != "healthy":
            return f"GET {path}: HTTP {response.status_code}, status {status!r}"
    if elapsed_ms > latency_threshold_ms:
        return f"GET {path}: {elapsed_ms:.0f} ms, over the {latency_threshold_ms:.0f} ms threshold"
    return ""


def watch(
    target: Target,
    settings: WatchSettings,
    *,
    mode: Mode,
    reports_dir: Path,
    rootdir: Path,
    targets_file: Path,
    run_id: str,
    controller: RollbackController | None = None,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
) -> WatchResult:
    """Watch ``target`` for ``settings.duration_s``; roll back when errors reach the threshold."""
    target = lifecycle_of(target).client_target()  # trusting the platform's own CA, if any
    from postdeploy.reporting.notifications import Notifier
    from postdeploy.reporting.severity import assess_results

    results = TargetResults(target.name)

    def incident(name: str, rollback: Any) -> tuple[Any, list[str]]:
        failing = sorted({f.test for f in results.failures})
        return assess_results(target, results, rollback), failing

    notifier = Notifier(run_id, context=incident)
    controller = controller or RollbackController(
        mode,
        AuditLog(reports_dir / AUDIT_FILE, run_id),
        Verifier(rootdir, targets_file, reports_dir),
        listener=notifier.rollback_event,
        evidence_dir=reports_dir / "evidence",
    )
    started_at = now()
    errors = requests = rounds = 0
    deadline = time.monotonic() + settings.duration_s
    with new_client(target) as client:
        while requests < settings.max_requests:
            rounds += 1
            for path in PROBES:
                requests += 1
                problem = probe(client, path, settings.latency_threshold_ms)
                nodeid = f"watch::{path}"
                if problem:
                    errors += 1
                    say(f"error {errors}/{settings.error_threshold}: {problem}")
                results.record(
                    nodeid,
                    Outcome.FAILED if problem else Outcome.PASSED,
                    gating=True,
                    category="monitoring",
                    message=problem,
                )
            if errors >= settings.error_threshold:
                break
            if time.monotonic() + settings.interval_s > deadline:
                break
            sleep(settings.interval_s)

    failed = errors >= settings.error_threshold
    record = None
    if failed:
        reason = (
            f"{errors} probe errors reached the threshold of {settings.error_threshold} "
            f"during the watch of {target.name}"
        )
        say(f"gate failed: {reason}")
        record = controller.on_gate_failed(target, reason)
    else:
        reason = (
            f"{requests} probes in {rounds} rounds, {errors} error(s), "
            f"under the threshold of {settings.error_threshold}"
        )
    entry = target_verdict(target, results, record)
    entry["gate"], entry["reason"] = ("failed" if failed else "passed"), reason
    if not failed:  # errors under the threshold are warnings: Sev 3, never a page
        entry["severity"] = (
            {"level": 3, "label": "Sev 3", "reasons": [reason], "pages": False}
            if errors
            else {"level": None, "label": "none", "reasons": [], "pages": False}
        )
    entry["notifications"] = notifier.summary(target, entry)
    verdict = verdict_document(
        run_id=run_id,
        started_at=started_at,
        rollback_mode=str(mode),
        expect_version=None,
        exit_status=1 if failed else 0,
        source="watch",
        targets={target.name: entry},
    )
    from postdeploy.settings import known_secrets

    write_verdict(reports_dir / VERDICT_FILE, verdict, known_secrets([target]))
    return WatchResult(results, record, requests, rounds, verdict)
