"""The rollback controller: decides, rolls back once, waits, verifies, and writes it down.

It runs only in the controller process (never on an xdist worker). It is called as soon as a
target's gate fails; from there it

1. picks the release to go back to (the newest earlier release the platform can roll back to),
2. in ``dry-run`` mode records the exact calls it would make and stops,
3. in ``auto`` mode asks the driver to roll back, waits until the platform reports that
   release serving, and verifies it (:class:`Verifier`): the run's gating checks re-run
   against it with its app version expected, and the data marker written before read back,
4. records every step in the verdict and in the append-only audit log.

Around the rollback it also keeps what an incident review needs: the failing release's newest
log lines at detection (redacted, bounded, in ``evidence_dir``), the timeline (detected,
initiated, serving, verified, each with its time), the rollback and recovery times judged
against ``rollback.objective_s`` and ``rollback.recovery_objective_s`` (a miss escalates),
and the availability measured while the rollback ran (``postdeploy.rollback.availability``).
A ``listener`` hears ``initiated`` the moment the driver is called and ``finished`` when the
outcome is known, so people are told while it happens.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postdeploy.redact import redact_text
from postdeploy.rollback import driver_for
from postdeploy.rollback.availability import AvailabilityProbe
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
#: Every gating check of a default run re-runs in about 30 s locally (46 checks, load and
#: TLS scans included); five minutes keeps rollback + verification inside the operations
#: plan's 10-minute recovery objective.
VERIFY_TIMEOUT_S = 300.0
#: Output kept from the verification run, in lines.
VERIFY_OUTPUT_LINES = 30
#: Bounds of the log evidence: characters per line and in all.
EVIDENCE_LINE_CHARS = 2000
EVIDENCE_MAX_CHARS = 512 * 1024
#: Events the listener hears.
EVENT_INITIATED = "initiated"
EVENT_FINISHED = "finished"


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
    #: detected, initiated, serving, verified (or failed): ``{"event", "at", "t_s"}``
    timeline: list[dict[str, Any]] = field(default_factory=list)
    objectives: dict[str, Any] | None = None
    availability: dict[str, Any] | None = None
    #: the failing release's logs kept at detection: ``{"file", "lines", "release"}``
    evidence: dict[str, Any] | None = None
    _t0: float = field(default=0.0, repr=False)

    def mark(self, event: str, monotonic: float | None = None, **details: Any) -> None:
        """Add ``event`` to the timeline, timed from detection."""
        monotonic = time.monotonic() if monotonic is None else monotonic
        if not self.timeline:
            self._t0 = monotonic
        self.timeline.append(
            {"event": event, "at": _now(), "t_s": round(monotonic - self._t0, 3), **details}
        )

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
            "timeline": self.timeline,
            "objectives": self.objectives,
            "availability": self.availability,
            "evidence": self.evidence,
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


def _junit_key(nodeid: str) -> tuple[str, str]:
    """A node id as junit names it: ``a/b/test_x.py::C::test_y`` -> ``(a.b.test_x.C, test_y)``."""
    path, *rest = nodeid.split("::")
    module = path.removesuffix(".py").replace("/", ".")
    return ".".join([module, *rest[:-1]]), rest[-1] if rest else ""


def _junit_outcomes(junit: Path) -> dict[tuple[str, str], str]:
    """(junit classname, name) -> passed / failed / broken / skipped."""
    outcomes: dict[tuple[str, str], str] = {}
    if not junit.exists():
        return outcomes
    try:
        root = ET.parse(junit).getroot()  # noqa: S314 - the junit.xml our own pytest wrote
    except ET.ParseError:
        return outcomes
    for case in root.iter("testcase"):
        key = case.get("classname", ""), case.get("name", "")
        outcome = "passed"
        for child in case:
            if child.tag == "failure":
                outcome = "failed"
            elif child.tag == "error":
                outcome = "broken"
            elif child.tag == "skipped" and outcome == "passed":
                outcome = "skipped"
        if outcomes.get(key) not in ("failed", "broken"):
            outcomes[key] = outcome
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
    #: ``dry-run`` for a rollback drill: the gate decides, nothing is called
    rollback: str = "off"
    #: where the sub-run's reports go, under reports_dir
    subdir: str = "verification"

    def __call__(
        self,
        target: Target,
        checks: Sequence[str] = (),
        expect_version: str | None = None,
        only_gating: bool = False,
    ) -> dict[str, Any]:
        """Verify ``target``: re-run ``checks`` (node ids; with ``only_gating`` the gating ones
        among them) expecting ``expect_version``, then read the data marker back."""
        result = self._rerun(target, list(checks), expect_version, only_gating)
        if self.markers is not None:
            try:
                result["data"] = self.markers.read_back(target)
            except MarkerError as exc:
                result["data"] = {"status": "failed", "reason": str(exc)}
            except Exception as exc:  # the harness's bug must not pass for a verified rollback
                result["data"] = {
                    "status": "failed",
                    "reason": f"the harness could not read the marker back: "
                    f"{type(exc).__name__}: {redact_text(str(exc), target.secret_values())}",
                }
        reasons = [result["reason"]] if result.get("reason") else []
        data = result.get("data") or {}
        if data.get("status") == "failed":
            reasons.append(f"data consistency: {data.get('reason', '')}")
        checks_ok = result.get("status") == "passed"
        data_ok = data.get("status", "passed") in ("passed", "not-run")
        result["status"] = "passed" if checks_ok and data_ok else "failed"
        if reasons:
            result["reason"] = "; ".join(reasons)
        return result

    def _command(
        self,
        target: Target,
        checks: list[str],
        expect_version: str | None,
        out_dir: Path,
        only_gating: bool = False,
    ) -> list[str]:
        if not checks:
            selection = [str(self.rootdir / VERIFY_SUITE), "-m", "gating"]
        else:
            selection = [*checks, "-m", "gating"] if only_gating else checks
        command = [
            sys.executable, "-m", "pytest", *selection, "--target", target.name,
            f"--targets-file={self.targets_file}",
            "--base-url", target.url,
            "--rollback", self.rollback, "--notify", "off", f"--reports-dir={out_dir}",
            f"--junitxml={out_dir / VERIFY_JUNIT}",
            "-p", "no:xdist", "-p", "no:cacheprovider", "-q", "--no-header",
            f"--rootdir={self.rootdir}",
        ]  # fmt: skip
        if expect_version:
            command.append(f"--expect-version={expect_version}")
        return command

    def _rerun(
        self,
        target: Target,
        checks: list[str],
        expect_version: str | None,
        only_gating: bool = False,
    ) -> dict[str, Any]:
        if not checks and not (self.rootdir / VERIFY_SUITE).exists():
            return {"status": "not-run", "reason": f"{self.rootdir / VERIFY_SUITE} does not exist"}
        out_dir = self.reports_dir / self.subdir / target.name
        command = self._command(target, checks, expect_version, out_dir, only_gating)
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
        tests = checks or [f"{classname}::{name}" for classname, name in sorted(outcomes)]
        if only_gating:  # the non-gating ones were deselected: not a result
            tests = [t for t in tests if t in failures or _junit_key(t) in outcomes]
        rerun = []
        for test in tests:
            failure = failures.get(test) or {}
            classname, _, name = test.partition("::")
            key = _junit_key(test) if checks else (classname, name)
            item: dict[str, Any] = {
                "test": test,
                "outcome": failure.get("kind") or outcomes.get(key, "not-run"),
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


#: Hears the controller's events: (target, EVENT_INITIATED or EVENT_FINISHED, record).
Listener = Callable[["Target", str, RollbackRecord], None]


def rollback_setting(target: Target, key: str) -> float:
    """A ``[rollback]`` number of ``target``, its documented default when the section lacks it."""
    from postdeploy.config import SECTIONS

    section: Mapping[str, Any] = target.sections.get("rollback") or {}
    return float(section.get(key, SECTIONS["rollback"][key].default))


def judge_objectives(
    target: Target, rollback_s: float | None, recovery_s: float | None
) -> dict[str, Any]:
    """The rollback and recovery times against the target's objectives."""
    rollback_objective = rollback_setting(target, "objective_s")
    recovery_objective = rollback_setting(target, "recovery_objective_s")
    rollback_met = rollback_s is not None and rollback_s <= rollback_objective
    recovery_met = recovery_s is not None and recovery_s <= recovery_objective
    missed = []
    if not rollback_met:
        took = "did not finish" if rollback_s is None else f"took {rollback_s:.1f} s"
        missed.append(f"the rollback {took}, objective {rollback_objective:.0f} s")
    if not recovery_met:
        took = "was not reached" if recovery_s is None else f"took {recovery_s:.1f} s"
        missed.append(f"recovery {took}, objective {recovery_objective:.0f} s")
    return {
        "rollback_s": rollback_s,
        "rollback_objective_s": rollback_objective,
        "rollback_met": rollback_met,
        "recovery_s": recovery_s,
        "recovery_objective_s": recovery_objective,
        "recovery_met": recovery_met,
        "missed": missed,
    }


def in_window(line: str, since: dt.datetime) -> bool:
    """False for a JSON log line stamped (``ts``) before ``since``; lines without a readable
    time are kept (a platform's own format, a tagged line)."""
    start = line.find("{")
    if start < 0:
        return True
    try:
        stamp = json.loads(line[start:]).get("ts")
        when = dt.datetime.fromisoformat(str(stamp))
    except (ValueError, AttributeError, TypeError):
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when >= since


def bounded_log(lines: list[str], secrets: list[str]) -> list[str]:
    """Redacted lines, each and all bounded, newest kept."""
    kept: list[str] = []
    total = 0
    for line in reversed(lines):
        line = redact_text(line[:EVIDENCE_LINE_CHARS], secrets)
        total += len(line) + 1
        if total > EVIDENCE_MAX_CHARS:
            break
        kept.append(line)
    return kept[::-1]


class RollbackController:
    """Rolls each target back at most once per run, as soon as its gate fails."""

    def __init__(
        self,
        mode: Mode,
        audit: AuditLog,
        verifier: Verifier,
        ledger: Ledger | None = None,
        *,
        listener: Listener | None = None,
        evidence_dir: Path | None = None,
    ) -> None:
        self.mode = mode
        self.audit = audit
        self.verifier = verifier
        self.ledger = ledger or Ledger()
        self.listener = listener
        self.evidence_dir = evidence_dir
        #: the detection window opens when the run (or the watch) starts
        self.window_start = dt.datetime.now(dt.UTC)
        self.records: dict[str, RollbackRecord] = {}
        #: target -> node ids of the run's gating checks, re-run by the verification
        self.gating_checks: dict[str, list[str]] = {}
        #: False when those ids are all the run's checks (xdist): the re-run keeps the gating
        self.checks_are_gating = True

    def _tell(self, target: Target, event: str, record: RollbackRecord) -> None:
        if self.listener is None:
            return
        try:
            self.listener(target, event, record)
        except Exception as exc:  # telling people must never stop the rollback
            self.audit.write(target, "listener_failed", on=event, error=type(exc).__name__)

    def _keep_evidence(
        self, target: Target, record: RollbackRecord, driver: RollbackDriver
    ) -> None:
        """The failing release's newest log lines at detection, redacted, into a file."""
        if self.evidence_dir is None:
            return
        release = (record.from_release or {}).get("id", "unknown")
        try:
            newest = driver.logs(int(rollback_setting(target, "evidence_log_lines")))
            lines = bounded_log(
                [line for line in newest if in_window(line, self.window_start)],
                target.secret_values(),
            )
        except Exception as exc:  # the platform's trouble: recorded, never fatal
            record.evidence = {"error": redact_text(f"{type(exc).__name__}: {exc}")}
            return
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        path = self.evidence_dir / f"{target.name}-release-{release}-logs.txt"
        path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        record.evidence = {
            "file": str(path), "lines": len(lines), "release": release,
            "since": self.window_start.isoformat(timespec="seconds"),
        }  # fmt: skip

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
        record.mark("detected", detected)
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

    def readiness(
        self, target: Target, driver: RollbackDriver | None = None
    ) -> list[dict[str, Any]]:
        """Could ``target`` be rolled back now? One ``{"check", "ok", "detail"}`` per condition
        (a rollback drill): allowed, driver reachable, a previous good release, not in
        cooldown, lock free. Calls nothing that changes the platform."""
        checks: list[dict[str, Any]] = []

        def check(name: str, ok: bool, detail: str) -> None:
            checks.append(
                {"check": name, "ok": ok, "detail": redact_text(detail, target.secret_values())}
            )

        allowed = bool(target.rollback.allowed)
        check(
            "rollback allowed", allowed,
            "rollback.allowed is true" if allowed
            else "rollback.allowed is false for this target; it would be rolled back by hand",
        )  # fmt: skip
        try:
            driver = driver or driver_for(target)
            driver.preflight()
            current = driver.current()
            releases = list(driver.releases())
        except Exception as exc:  # DriverError or a driver bug: the drill says which
            check("driver reachable", False, f"the {target.platform} driver: {exc}")
            check("previous good release", False, "unknown: the driver did not answer")
        else:
            check(
                "driver reachable", True,
                f"the {target.platform} driver answers; serving release {current.id} "
                f"({current.version or current.ref})",
            )  # fmt: skip
            to = previous_good(releases, current)
            check(
                "previous good release", to is not None,
                f"would roll back to release {to.id} ({to.version or to.ref})" if to
                else f"no earlier release of {target.name} to roll back to "
                f"(serving {current.id} {current.version or current.ref}, "
                f"{len(releases)} release(s) known)",
            )  # fmt: skip
        cooldown = self._cooldown(target)
        check("not in cooldown", not cooldown, cooldown or "no rollback inside the cooldown")
        with self.ledger.hold(target.name) as acquired:
            check(
                "lock free", acquired,
                f"the rollback lock in {self.ledger.directory} is free" if acquired
                else f"another postdeploy run holds the rollback lock of {target.name} "
                f"({self.ledger.directory}); a rollback now would stand aside",
            )  # fmt: skip
        return checks

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
        self,
        target: Target,
        record: RollbackRecord,
        driver: RollbackDriver | None,
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
            self._keep_evidence(target, record, driver)
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
        record.mark("initiated", to=to.id)
        self._tell(target, EVENT_INITIATED, record)
        wait_s = float(target.rollback.wait_timeout_s)
        probe = AvailabilityProbe(
            target,
            interval_s=rollback_setting(target, "availability_interval_s"),
            max_s=wait_s,
            objective=rollback_setting(target, "availability_objective"),
        ).start()
        started = time.monotonic()
        try:
            new = driver.rollback(to)
            record.new_release = new.to_dict()
            self.ledger.record(
                target.name, run_id=self.audit.run_id, event="rollback", to=to.id, new=new.id,
                from_release=(record.from_release or {}).get("id"),
            )  # fmt: skip
            serving = driver.wait_until_serving(new, wait_s)
            record.duration_s = round(time.monotonic() - started, 3)
        finally:
            record.availability = probe.stop()
        if not serving:
            record.mark("failed", why="not serving")
            record.objectives = judge_objectives(target, None, None)
            return self._finish(
                target, record, Status.FAILED,
                f"release {new.id} was not serving within {wait_s:.0f} s",
                escalate=True,
            )  # fmt: skip
        record.mark("serving", release=new.id)
        self.audit.write(target, "rollback_serving", release=new.id, duration_s=record.duration_s)
        record.verification = self.verifier(
            target,
            checks=tuple(dict.fromkeys(self.gating_checks.get(target.name, ()))),
            expect_version=self._restored_version(driver),
            only_gating=not self.checks_are_gating,
        )
        if record.verification.get("status") != "passed":
            record.mark("failed", why="verification failed")
            record.objectives = judge_objectives(target, record.duration_s, None)
            why = record.verification.get("reason") or "the gating checks fail against it too"
            return self._finish(
                target, record, Status.FAILED,
                f"rolled back to {to.id}, but its verification failed: {why}", escalate=True,
            )  # fmt: skip
        record.mark("verified")
        record.objectives = judge_objectives(
            target, record.duration_s, round(time.monotonic() - detected, 3)
        )
        missed = record.objectives["missed"]
        reason = (
            f"rolled back from {record.from_release and record.from_release['id']} to {to.id}; "
            "the run's gating checks pass against it and the data written before is intact"
        )
        if missed:
            reason += "; objective missed: " + "; ".join(missed)
        return self._finish(target, record, Status.SUCCEEDED, reason, escalate=bool(missed))

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
        if status is Status.FAILED and record.timeline and record.timeline[-1]["event"] != "failed":
            record.mark("failed", why=record.reason)
        record.escalate = escalate
        record.finished_at = _now()
        self.audit.write(
            target, "rollback_" + str(status).replace("-", "_"),
            reason=record.reason, verification=(record.verification or {}).get("status"),
            escalate=escalate,
        )  # fmt: skip
        if self.mode is Mode.AUTO and status is not Status.DRY_RUN:
            self._tell(target, EVENT_FINISHED, record)
        return record
