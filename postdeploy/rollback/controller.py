"""The rollback controller: decides, rolls back once, waits, verifies, and writes it down.

It runs only in the controller process (never on an xdist worker). It is called as soon as a
target's gate fails; from there it

1. picks the release to go back to (the newest earlier release the platform can roll back to),
2. in ``dry-run`` mode records the exact calls it would make and stops,
3. in ``auto`` mode asks the driver to roll back, waits until the platform reports that
   release serving, and verifies it (:class:`Verifier`): the run's gating checks re-run
   against it with its app version expected, and the data marker written before read back,
4. records every step in the verdict and in the append-only audit log.

A failure anywhere is a failed rollback with a reason, never an exception out of here: the
run must still write its reports.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postdeploy.redact import redact_text
from postdeploy.rollback import driver_for
from postdeploy.rollback.base import DriverError, Release, previous_good
from postdeploy.rollback.consistency import DataMarkers, MarkerError
from postdeploy.rollback.ledger import Ledger

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.rollback.base import RollbackDriver

AUDIT_FILE = "rollback-audit.jsonl"
#: Re-run against the restored release when the run names no gating checks (watch).
VERIFY_SUITE = Path("suites") / "monitoring" / "test_health.py"
VERIFY_JUNIT = "junit.xml"
VERIFY_TIMEOUT_S = 120.0
#: Output kept from the verification run, in lines.
VERIFY_OUTPUT_LINES = 30


class Mode(StrEnum):
    OFF = "off"
    DRY_RUN = "dry-run"
    AUTO = "auto"


class Status(StrEnum):
    NOT_NEEDED = "not-needed"
    DRY_RUN = "dry-run"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class RollbackRecord:
    """What happened to one target's rollback in this run; lands in verdict.json."""

    mode: Mode
    status: Status = Status.NOT_NEEDED
    reason: str = ""
    from_release: dict[str, Any] | None = None
    to_release: dict[str, Any] | None = None
    new_release: dict[str, Any] | None = None
    calls: list[str] = field(default_factory=list)
    detected_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    detection_to_call_s: float | None = None
    duration_s: float | None = None
    verification: dict[str, Any] | None = None
    escalate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": str(self.mode),
            "status": str(self.status),
            "reason": self.reason,
            "from_release": self.from_release,
            "to_release": self.to_release,
            "new_release": self.new_release,
            "calls": self.calls,
            "detected_at": self.detected_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "detection_to_call_s": self.detection_to_call_s,
            "duration_s": self.duration_s,
            "verification": self.verification,
            "escalate": self.escalate,
        }


class AuditLog:
    """Append-only JSON lines, one per rollback event; never rewritten."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id

    def write(self, target: Target, event: str, **details: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(
            {
                "ts": _now(),
                "run_id": self.run_id,
                "target": target.name,
                "platform": target.platform,
                "event": event,
                **details,
            },
            default=str,
        )
        with open(self.path, "a", encoding="utf-8") as audit:
            audit.write(redact_text(line, target.secret_values()) + "\n")


def _junit_outcomes(junit: Path) -> dict[str, str]:
    """``path/to/test_x.py::test_y[param]`` -> passed / failed / broken / skipped."""
    outcomes: dict[str, str] = {}
    if not junit.exists():
        return outcomes
    try:
        root = ET.parse(junit).getroot()  # noqa: S314 - the junit.xml our own pytest wrote
    except ET.ParseError:
        return outcomes
    for case in root.iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        nodeid = f"{module}.py::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "broken"
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        if outcomes.get(nodeid) not in ("failed", "broken"):
            outcomes[nodeid] = outcome
    return outcomes


@dataclass
class Verifier:
    """Proves a rollback's recovery: the run's gating checks re-run against the restored
    release in a separate pytest process (with its app version expected where the platform
    knows it), and the data marker written before the rollback read back
    (:mod:`postdeploy.rollback.consistency`)."""

    rootdir: Path
    targets_file: Path
    reports_dir: Path
    timeout_s: float = VERIFY_TIMEOUT_S
    #: the data markers of this run; None where the run wrote none (dry runs, watch)
    markers: DataMarkers | None = None

    def __call__(
        self, target: Target, checks: Sequence[str] = (), expect_version: str | None = None
    ) -> dict[str, Any]:
        result = self._rerun(target, list(checks), expect_version)
        if self.markers is not None:
            try:
                result["data"] = self.markers.read_back(target)
            except MarkerError as exc:
                result["data"] = {"status": "failed", "reason": str(exc)}
        reasons = [result["reason"]] if result.get("reason") else []
        data = result.get("data") or {}
        if data.get("status") == "failed":
            reasons.append(f"data consistency: {data.get('reason', '')}")
        checks_ok = result.get("status") == "passed"
        data_ok = data.get("status", "passed") == "passed"
        result["status"] = "passed" if checks_ok and data_ok else "failed"
        if reasons:
            result["reason"] = "; ".join(reasons)
        return result

    def _command(
        self, target: Target, checks: list[str], expect_version: str | None, out_dir: Path
    ) -> list[str]:
        selection = checks or [str(self.rootdir / VERIFY_SUITE), "-m", "gating"]
        command = [
            sys.executable, "-m", "pytest", *selection, "--target", target.name,
            f"--targets-file={self.targets_file}",
            "--base-url", target.url,
            "--rollback", "off", "--notify", "off", f"--reports-dir={out_dir}",
            f"--junitxml={out_dir / VERIFY_JUNIT}",
            "-p", "no:xdist", "-p", "no:cacheprovider", "-q", "--no-header",
            f"--rootdir={self.rootdir}",
        ]  # fmt: skip
        if expect_version:
            command.append(f"--expect-version={expect_version}")
        return command

    def _rerun(
        self, target: Target, checks: list[str], expect_version: str | None
    ) -> dict[str, Any]:
        if not checks and not (self.rootdir / VERIFY_SUITE).exists():
            return {"status": "not-run", "reason": f"{self.rootdir / VERIFY_SUITE} does not exist"}
        out_dir = self.reports_dir / "verification" / target.name
        command = self._command(target, checks, expect_version, out_dir)
        started = time.monotonic()
        base: dict[str, Any] = {"expect_version": expect_version}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                cwd=self.rootdir,
                env={**os.environ, "PYTEST_ADDOPTS": ""},
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {
                **base, "status": "failed",
                "reason": f"the gating checks did not finish within {self.timeout_s:.0f} s",
                "checks": [{"test": c, "outcome": "not-run"} for c in checks],
            }  # fmt: skip
        gate, failures = "unknown", {}
        verdict_file = out_dir / "verdict.json"
        if verdict_file.exists():
            data = json.loads(verdict_file.read_text(encoding="utf-8"))
            entry = data.get("targets", {}).get(target.name, {})
            gate = entry.get("gate", "unknown")
            failures = {f.get("test"): f for f in entry.get("failures") or []}
        outcomes = _junit_outcomes(out_dir / VERIFY_JUNIT)
        rerun = []
        for test in checks or sorted(outcomes):
            failure = failures.get(test) or {}
            item: dict[str, Any] = {
                "test": test,
                "outcome": failure.get("kind") or outcomes.get(test, "not-run"),
            }
            if failure.get("message"):
                item["message"] = redact_text(str(failure["message"]), target.secret_values())
            rerun.append(item)
        failing = [c["test"] for c in rerun if c["outcome"] not in ("passed", "skipped")]
        tail = (done.stdout + done.stderr).strip().splitlines()[-VERIFY_OUTPUT_LINES:]
        passed = gate == "passed" and done.returncode == 0 and not failing
        result = {
            **base,
            "status": "passed" if passed else "failed",
            "gate": gate,
            "exit_code": done.returncode,
            "duration_s": round(time.monotonic() - started, 3),
            "checks": rerun,
            "failed_checks": failing,
            "output_tail": [redact_text(line, target.secret_values()) for line in tail],
        }
        if not passed:
            names = ", ".join(test.rsplit("::", 1)[-1] for test in failing)
            result["reason"] = (
                f"gating checks failing against the restored release: {names}"
                if failing
                else f"the verification run ended with gate {gate} (exit {done.returncode})"
            )
        return result


class RollbackController:
    """Rolls each target back at most once per run, as soon as its gate fails."""

    def __init__(
        self, mode: Mode, audit: AuditLog, verifier: Verifier, ledger: Ledger | None = None
    ) -> None:
        self.mode = mode
        self.audit = audit
        self.verifier = verifier
        self.ledger = ledger or Ledger()
        self.records: dict[str, RollbackRecord] = {}
        #: target -> node ids of the run's gating checks, re-run by the verification
        self.gating_checks: dict[str, list[str]] = {}

    def record_for(self, target: Target) -> RollbackRecord:
        return self.records.setdefault(target.name, RollbackRecord(self.mode))

    def handled(self, target: Target) -> bool:
        return self.record_for(target).status is not Status.NOT_NEEDED

    def on_gate_failed(
        self,
        target: Target,
        reason: str,
        detected: float | None = None,
        driver: RollbackDriver | None = None,
    ) -> RollbackRecord:
        """Act on a failed gate: once per target per run, whatever the mode."""
        detected = time.monotonic() if detected is None else detected
        record = self.record_for(target)
        if self.mode is Mode.OFF or self.handled(target):
            return record
        record.detected_at = _now()
        self.audit.write(target, "gate_failed", mode=str(self.mode), reason=reason)
        if not target.rollback.allowed:
            return self._finish(
                target, record, Status.SKIPPED,
                "rollback.allowed is false for this target; roll back by hand", escalate=True,
            )  # fmt: skip
        cooldown = self._cooldown(target)
        if cooldown:
            return self._finish(target, record, Status.SKIPPED, cooldown, escalate=True)
        if self.mode is Mode.DRY_RUN:
            return self._decide(target, record, driver, detected)
        with self.ledger.hold(target.name) as acquired:
            if not acquired:
                return self._finish(
                    target, record, Status.SKIPPED,
                    f"another postdeploy run holds the rollback lock of {target.name} "
                    f"({self.ledger.directory}) and is rolling it back; this run stood aside",
                )  # fmt: skip
            cooldown = self._cooldown(target)  # that run may have just finished one
            if cooldown:
                return self._finish(target, record, Status.SKIPPED, cooldown, escalate=True)
            return self._decide(target, record, driver, detected)

    def _cooldown(self, target: Target) -> str:
        """Why the target must not be rolled back again now, or an empty string."""
        window = target.rollback.cooldown_s
        since = self.ledger.seconds_since_last(target.name) if window > 0 else None
        if since is None or since[0] >= window:
            return ""
        seconds, last = since
        return (
            f"the stable release is failing too: {target.name} was rolled back "
            f"{seconds:.0f} s ago (run {last.get('run_id')}, to release {last.get('to')}), "
            f"inside the {window:.0f} s cooldown; not rolling back again, investigate by hand"
        )

    def _decide(
        self, target: Target, record: RollbackRecord, driver: RollbackDriver | None,
        detected: float,
    ) -> RollbackRecord:
        try:
            driver = driver or driver_for(target)
            current = driver.current()
            to = previous_good(driver.releases(), current)
            record.from_release = current.to_dict()
            if to is None:
                return self._finish(
                    target, record, Status.FAILED,
                    f"no earlier release of {target.name} to roll back to "
                    f"(serving {current.id} {current.ref or current.version})",
                    escalate=True,
                )  # fmt: skip
            record.to_release = to.to_dict()
            record.calls = [str(call) for call in driver.plan(to)]
            if self.mode is Mode.DRY_RUN:
                self.audit.write(target, "dry_run", to=to.id, calls=record.calls)
                return self._finish(target, record, Status.DRY_RUN, "dry run: nothing was called")
            return self._roll_back(target, record, driver, to, detected)
        except DriverError as exc:
            return self._finish(target, record, Status.FAILED, str(exc), escalate=True)
        except Exception as exc:  # a driver bug must not lose the run's reports
            return self._finish(
                target, record, Status.FAILED,
                f"the {target.platform} driver raised {type(exc).__name__}: {exc}",
                escalate=True,
            )  # fmt: skip

    def _roll_back(
        self,
        target: Target,
        record: RollbackRecord,
        driver: RollbackDriver,
        to: Release,
        detected: float,
    ) -> RollbackRecord:
        record.started_at = _now()
        record.detection_to_call_s = round(time.monotonic() - detected, 4)
        self.audit.write(target, "rollback_started", to=to.id, calls=record.calls)
        started = time.monotonic()
        new = driver.rollback(to)
        record.new_release = new.to_dict()
        self.ledger.record(
            target.name, run_id=self.audit.run_id, event="rollback", to=to.id, new=new.id,
            from_release=(record.from_release or {}).get("id"),
        )  # fmt: skip
        serving = driver.wait_until_serving(new, target.rollback.wait_timeout_s)
        record.duration_s = round(time.monotonic() - started, 3)
        if not serving:
            return self._finish(
                target, record, Status.FAILED,
                f"release {new.id} was not serving within {target.rollback.wait_timeout_s:.0f} s",
                escalate=True,
            )  # fmt: skip
        self.audit.write(target, "rollback_serving", release=new.id, duration_s=record.duration_s)
        record.verification = self.verifier(
            target,
            checks=tuple(self.gating_checks.get(target.name, ())),
            expect_version=self._restored_version(driver),
        )
        if record.verification.get("status") != "passed":
            why = record.verification.get("reason") or "the gating checks fail against it too"
            return self._finish(
                target, record, Status.FAILED,
                f"rolled back to {to.id}, but its verification failed: {why}", escalate=True,
            )  # fmt: skip
        return self._finish(
            target,
            record,
            Status.SUCCEEDED,
            f"rolled back from {record.from_release and record.from_release['id']} to {to.id}; "
            "the run's gating checks pass against it and the data written before is intact",
        )

    @staticmethod
    def _restored_version(driver: RollbackDriver) -> str | None:
        """The app version the restored release should report, where the platform knows it."""
        try:
            return driver.current_app_version()
        except Exception:  # unknown is an answer; the checks still run
            return None

    def _finish(
        self,
        target: Target,
        record: RollbackRecord,
        status: Status,
        reason: str,
        *,
        escalate: bool = False,
    ) -> RollbackRecord:
        record.status = status
        record.reason = redact_text(reason, target.secret_values())
        record.escalate = escalate
        record.finished_at = _now()
        self.audit.write(
            target, "rollback_" + str(status).replace("-", "_"),
            reason=record.reason, verification=(record.verification or {}).get("status"),
            escalate=escalate,
        )  # fmt: skip
        return record
