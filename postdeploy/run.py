"""The state of one validation run, kept in the controller process only.

Registered by the plugin when the run validates targets and this process is not an xdist
worker. Test reports reach it from every worker (``pytest_runtest_logreport``); it keeps the
gate per target, hands a failed gate to the rollback controller at once, and at the end writes
``verdict.json`` and sets the exit status.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from postdeploy.gate import (
    PROP_ATTEMPTS,
    PROP_BACKEND,
    PROP_CANARY,
    PROP_CATEGORY,
    PROP_FIRST_FAILURE,
    PROP_GATING,
    PROP_KIND,
    PROP_QUARANTINED,
    PROP_TARGET,
    PROP_VERSION,
    Gate,
    Outcome,
    TargetResults,
    failure_message,
)
from postdeploy.reporting.verdict import (
    VERDICT_FILE,
    now,
    summary_lines,
    verdict_document,
    write_verdict,
)
from postdeploy.reporting.verdict import target_verdict as build_target_verdict
from postdeploy.rollback.consistency import DataMarkers
from postdeploy.rollback.controller import (
    AUDIT_FILE,
    AuditLog,
    Mode,
    RollbackController,
    Status,
    Verifier,
)

#: Where the failing releases' logs are kept (under the reports dir).
EVIDENCE_DIR = "evidence"

if TYPE_CHECKING:
    from _pytest.reports import TestReport
    from _pytest.terminal import TerminalReporter

    from postdeploy.config import Target
    from postdeploy.settings import RunSettings


def target_of_nodeid(nodeid: str, names: list[str]) -> str | None:
    """The target a parametrized node id runs against: ``test_x[local-prod]`` -> local-prod
    (the longest target name that is a whole ``-``-separated part of its parameter ids)."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = "-" + nodeid[nodeid.index("[") + 1 : -1] + "-"
    found = [name for name in names if f"-{name}-" in params]
    return max(found, key=len) if found else None


class ValidationRun:
    """Gate, rollback and verdict for the targets of one run."""

    def __init__(self, config: pytest.Config, settings: RunSettings) -> None:
        self.config = config
        self.settings = settings
        self.started_at = now()
        self.results = {name: TargetResults(name) for name in settings.targets}
        self.serving_versions: dict[str, str] = {}
        from postdeploy.reporting.notifications import Notifier

        self.notifier = Notifier(settings.run_id, enabled=settings.notify, context=self._incident)
        #: the data markers written at the start of a run that may roll back (consistency.py)
        self.markers = DataMarkers(settings.run_id) if settings.rollback == Mode.AUTO else None
        self.controller = RollbackController(
            Mode(settings.rollback),
            AuditLog(settings.reports_dir / AUDIT_FILE, settings.run_id),
            Verifier(
                settings.rootdir, settings.targets_file, settings.reports_dir,
                markers=self.markers,
            ),
            listener=self.notifier.rollback_event,
            evidence_dir=settings.reports_dir / EVIDENCE_DIR,
        )  # fmt: skip
        #: the targets as the controller probes them (a local target trusts its CA)
        self.probe_targets = dict(settings.targets)
        self.verdict: dict[str, Any] | None = None

    # -- the platforms' part: deploy before the run where the platform does (local) --------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        from postdeploy.rollback import lifecycle_of

        for target in self.settings.targets.values():
            try:
                self.probe_targets[target.name] = lifecycle_of(target).prepare(
                    self.settings.run_id, self.settings.expect_version
                )
            except Exception as exc:
                raise pytest.UsageError(f"target {target.name!r}: {exc}") from None
            if self.markers is not None:
                self._write_marker(target)

    def _write_marker(self, target: Target) -> None:
        """The data marker a rollback's verification reads back; never fails the run."""
        assert self.markers is not None
        try:
            result = self.markers.write(target)
        except Exception as exc:  # the harness's trouble: the verification will say so
            result = {"status": "not-written", "reason": f"{type(exc).__name__}: {exc}"}
        self.controller.audit.write(target, "data_marker", **result)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The gating checks of each target, re-run by a rollback's verification.

        What start-up and collection built (modules, checks, fixture definitions) lives all
        run: frozen out of the garbage collector's sight (:func:`gc.freeze`), its full
        collections no longer walk it - about 0.3 s of CPU of a gating run, on a machine
        whose two cores are what the run waits for."""
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            name = callspec.params.get("target") if callspec else None
            if name in self.results and item.get_closest_marker("gating") is not None:
                self.controller.gating_checks.setdefault(name, []).append(item.nodeid)
        gc.collect()  # nothing that is already garbage is frozen
        gc.freeze()

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller collects nothing itself: the workers' node ids stand in,
        and the verification keeps the gating ones with ``-m gating``."""
        if self.controller.checks_are_gating is False:
            return  # the first worker's ids are every worker's
        self.controller.checks_are_gating = False
        for nodeid in ids:
            name = target_of_nodeid(nodeid, list(self.results))
            if name is not None:
                self.controller.gating_checks.setdefault(name, []).append(nodeid)

    # -- results ---------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: TestReport) -> None:
        props: dict[str, Any] = dict(report.user_properties)
        name = props.get(PROP_TARGET)
        if name not in self.results:
            return
        if props.get(PROP_VERSION):
            self.serving_versions[name] = props[PROP_VERSION]
        results = self.results[name]
        failed_before = results.gate_failed
        kind = Outcome(props.get(PROP_KIND, "passed"))
        # A quarantined check is reported like any other but never gates.
        quarantined = props.get(PROP_QUARANTINED)
        if quarantined:
            results.note_quarantined(report.nodeid, str(quarantined))
        if props.get(PROP_CANARY) and report.when == "call":
            results.canary.append({"test": report.nodeid, **props[PROP_CANARY]})
        if props.get(PROP_ATTEMPTS):
            results.note_rerun(
                report.nodeid, int(props[PROP_ATTEMPTS]), str(props.get(PROP_FIRST_FAILURE, ""))
            )
        results.record(
            report.nodeid,
            kind,
            gating=bool(props.get(PROP_GATING)) and not quarantined,
            category=props.get(PROP_CATEGORY, ""),
            phase=report.when,
            message=failure_message(report) if kind in (Outcome.FAILED, Outcome.BROKEN) else "",
            backend=str(props.get(PROP_BACKEND, "")),
        )
        checks = self.controller.gating_checks.setdefault(name, [])
        if props.get(PROP_GATING) and report.nodeid not in checks:
            checks.append(report.nodeid)  # under xdist the controller collects nothing itself
        if results.gate_failed and not failed_before:
            self._gate_failed(name, time.monotonic())

    def _incident(self, name: str, rollback: Any) -> tuple[Any, list[str]]:
        """The severity and failing checks of ``name`` now (for the notifier's events)."""
        from postdeploy.reporting.severity import assess_results

        results = self.results[name]
        failing = sorted({f.test for f in results.failures if f.gating})
        return assess_results(self.settings.targets[name], results, rollback), failing

    def _gate_failed(self, name: str, detected: float) -> None:
        target = self.probe_targets[name]
        _, reason = self.results[name].verdict()
        record = self.controller.on_gate_failed(target, reason, detected)
        from postdeploy.reporting.attachments import attach_incident

        attach_incident(record.to_dict())
        if record.status in (Status.SUCCEEDED, Status.FAILED) and record.new_release:
            marker = self.settings.marker_file(name)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

    # -- the end ---------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from postdeploy import paths
        from postdeploy.accounts import delete_pool
        from postdeploy.rollback import lifecycle_of

        for target in self.settings.targets.values():
            lifecycle = lifecycle_of(target)
            delete_pool(lifecycle.client_target(), self.settings.run_id, paths.state_dir())
            lifecycle.finish(self.settings.run_id)
        targets = {}
        for name, target in self.settings.targets.items():
            record = self.controller.records.get(name)
            targets[name] = build_target_verdict(
                target, self.results[name], record, self.serving_versions.get(name)
            )
        status = int(exitstatus)
        gates = {name: self.results[name].verdict()[0] for name in targets}
        if any(gate is Gate.FAILED for gate in gates.values()) or any(
            gate is Gate.INCONCLUSIVE and self.results[name].gating for name, gate in gates.items()
        ):
            status = status if status not in (0, 5) else 1
        session.exitstatus = status
        self.verdict = verdict_document(
            run_id=self.settings.run_id,
            started_at=self.started_at,
            rollback_mode=self.settings.rollback,
            expect_version=self.settings.expect_version,
            exit_status=status,
            source="pytest",
            quarantine=self._quarantine(),
            targets=targets,
        )
        for name, entry in targets.items():
            entry["notifications"] = self.notifier.summary(self.settings.targets[name], entry)
        write_verdict(
            self.settings.reports_dir / VERDICT_FILE,
            self.verdict,
            self.settings.secrets,
        )
        self._finish_reports()

    def _quarantine(self) -> dict[str, Any] | None:
        from postdeploy.quarantine import QUARANTINE_FILE_KEY

        quarantine = self.config.stash.get(QUARANTINE_FILE_KEY, None)
        if quarantine is None:
            return None
        seen = {e for r in self.results.values() for e in r.quarantined.values()}
        return {
            "file": str(quarantine.path),
            "entries": [e.describe() for e in quarantine.entries],
            "unused": [e.describe() for e in quarantine.entries if e.describe() not in seen],
        }

    def _finish_reports(self) -> None:
        """Allure's environment, executor and categories files; scrub the results and junit."""
        from postdeploy.reporting import allure_files

        results_dir = getattr(self.config.option, "allure_report_dir", None)
        if results_dir and self.verdict is not None:
            allure_files.write_run_files(Path(results_dir), self.settings, self.verdict)
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if xmlpath:
            allure_files.scrub_junit(Path(xmlpath), self.settings.secrets)

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if self.verdict is None:
            return
        terminalreporter.section("postdeploy verdict")
        for line in summary_lines(self.verdict, self.settings.secrets):
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"verdict: {self.settings.reports_dir / VERDICT_FILE}")
