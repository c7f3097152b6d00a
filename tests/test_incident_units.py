"""The incident path's parts without a platform: severity rules, objectives, listener events,
evidence bounds, availability gaps, the watch's environment defaults."""

from __future__ import annotations

import time

import pytest

from postdeploy.config import SECTIONS, Section, Target, load_targets
from postdeploy.reporting.severity import SeverityRules, assess
from postdeploy.rollback.availability import Sample, longest_gap
from postdeploy.rollback.controller import (
    EVIDENCE_MAX_CHARS,
    AuditLog,
    Mode,
    RollbackController,
    Status,
    bounded_log,
)
from postdeploy.rollback.ledger import Ledger
from postdeploy.watch import env_defaults
from tests.conftest import REPO
from tests.test_controller import MemoryDriver

DEFAULT_RULES = SeverityRules.from_section(
    {key: spec.default for key, spec in SECTIONS["severity"].items()}
)


def failure(test: str, gating: bool = True, kind: str = "failed", message: str = "") -> dict:
    return {"test": test, "gating": gating, "kind": kind, "message": message}


# -- severity -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed", "category", "level"),
    [
        ("suites/monitoring/test_health.py::test_health_endpoint_is_healthy[local]", "", 1),
        ("suites/functional/test_authentication.py::test_login[local]", "functional", 1),
        ("suites/security/test_auth.py::test_forged_token_is_refused[local]", "security", 1),
        ("suites/functional/test_database.py::test_progress_persists[local]", "functional", 1),
        ("suites/journeys/test_journeys.py::test_learner_journey[local]", "journey", 1),
        ("watch::/api/health", "monitoring", 1),
        ("suites/performance/test_response_times.py::test_content_slo[local]", "performance", 2),
        ("suites/functional/test_learning.py::test_content_listed[local]", "functional", 2),
    ],
)
def test_the_default_mapping_follows_the_operations_plan(failed, category, level):
    assessment = assess(DEFAULT_RULES, [failure(failed)], {failed: category})
    assert assessment.level == level
    assert assessment.pages is (level == 1)


def test_an_unreachable_target_is_sev_1_whatever_the_check():
    message = "target 'local' is unreachable at https://127.0.0.1:1: ConnectError"
    failed = failure("suites/performance/test_response_times.py::test_x[local]", message=message)
    assert assess(DEFAULT_RULES, [failed]).reasons[0].startswith("app down:")


def test_warnings_are_sev_3_and_never_page():
    assessment = assess(
        DEFAULT_RULES,
        [failure("suites/monitoring/test_health.py::test_x[local]", gating=False)],
        warnings=["suites/functional/test_learning.py::test_flaky[local]"],
    )
    assert (assessment.level, assessment.pages) == (3, False)


def test_broken_checks_and_passing_runs_have_no_severity():
    broken = failure("suites/monitoring/test_health.py::test_x[local]", kind="broken")
    assert assess(DEFAULT_RULES, [broken]).level is None
    assert assess(DEFAULT_RULES, []).to_dict() == {
        "level": None, "label": "none", "reasons": [], "pages": False,
    }  # fmt: skip


def test_a_failed_or_escalated_rollback_is_sev_1_even_after_a_performance_failure():
    slow = [failure("suites/performance/test_response_times.py::test_x[local]")]
    failed = assess(DEFAULT_RULES, slow, rollback={"status": "failed", "reason": "not serving"})
    assert failed.level == 1
    assert failed.reasons[0] == "rollback failed: not serving"
    late = assess(DEFAULT_RULES, slow, rollback={"status": "succeeded", "escalate": True})
    assert late.level == 1


def test_the_mapping_is_configuration(tmp_path):
    file = tmp_path / "targets.toml"
    file.write_text(
        '[targets.web]\nplatform = "command"\nurl = "https://web.example.com"\n'
        'rollback_command = "true"\n[targets.web.severity]\n'
        'sev1_checks = ["*test_response_times.py::*"]\nsev1_categories = []\n'
        "page_max_level = 2\n"
    )
    target = load_targets(file, environ={}).targets["web"]
    rules = SeverityRules.from_section(target.severity)
    slow = "suites/performance/test_response_times.py::test_x[web]"
    journey = "suites/journeys/test_journeys.py::test_y[web]"
    assert assess(rules, [failure(slow)]).level == 1
    assert assess(rules, [failure(journey)], {journey: "journey"}).level == 2
    assert assess(rules, [failure(journey)], {journey: "journey"}).pages is True


# -- the controller: events, objectives, evidence ---------------------------------------------


def target(**rollback: object) -> Target:
    settings = {"allowed": True, "wait_timeout_s": 2.0, "cooldown_s": 0.0, **rollback}
    return Target(
        name="web", platform="memory", url="https://127.0.0.1:9",
        sections={"rollback": Section("rollback", settings)},
    )  # fmt: skip


class LoggingDriver(MemoryDriver):
    def __init__(self, lines: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines = lines

    def logs(self, limit=200):
        return self.lines[-limit:]


def controller(tmp_path, heard: list, verified: str = "passed") -> RollbackController:
    return RollbackController(
        Mode.AUTO, AuditLog(tmp_path / "audit.jsonl", "run-1"),
        lambda t, **_: {"status": verified}, Ledger(tmp_path / "ledger"),
        listener=lambda t, event, record: heard.append((event, str(record.status))),
        evidence_dir=tmp_path / "evidence",
    )  # fmt: skip


def test_the_listener_hears_initiated_before_the_driver_then_finished(tmp_path):
    heard: list = []
    record = controller(tmp_path, heard).on_gate_failed(
        target(), "health failed", driver=LoggingDriver(["a"])
    )
    assert record.status is Status.SUCCEEDED
    assert heard == [("initiated", "not-needed"), ("finished", "succeeded")]
    assert [e["event"] for e in record.timeline] == ["detected", "initiated", "serving", "verified"]


def test_a_rollback_over_its_objective_escalates(tmp_path):
    heard: list = []
    slow = target(objective_s=0.1, recovery_objective_s=0.1)
    record = controller(tmp_path, heard).on_gate_failed(slow, "x", driver=SlowDriver([]))
    assert record.status is Status.SUCCEEDED
    assert record.escalate is True
    assert "objective missed" in record.reason
    assert record.objectives["rollback_met"] is False
    assert record.objectives["recovery_met"] is False
    assert len(record.objectives["missed"]) == 2


def test_a_failed_verification_is_failed_on_the_timeline_and_never_recovered(tmp_path):
    heard: list = []
    ctl = controller(tmp_path, heard, verified="failed")
    record = ctl.on_gate_failed(target(), "x", driver=LoggingDriver([]))
    assert record.status is Status.FAILED
    assert record.timeline[-1]["event"] == "failed"
    assert record.objectives["recovery_s"] is None
    assert heard[-1] == ("finished", "failed")


def test_the_evidence_is_the_failing_releases_logs_redacted_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFTEST_TOKEN_VALUE", "tok-0123456789abcdef")
    lines = [f'{{"path": "/api/health", "status": 503, "n": {i}}}' for i in range(50)]
    lines.append("Authorization: Bearer tok-0123456789abcdef")
    heard: list = []
    record = controller(tmp_path, heard).on_gate_failed(
        target(evidence_log_lines=20), "x", driver=LoggingDriver(lines)
    )
    text = (tmp_path / "evidence" / "web-release-v3-logs.txt").read_text()
    assert record.evidence["lines"] == 20 == len(text.splitlines())
    assert "tok-0123456789abcdef" not in text
    assert '"n": 49' in text


def test_evidence_is_bounded_in_characters():
    kept = bounded_log(["x" * 1500] * 1000, [])
    assert sum(len(line) + 1 for line in kept) <= EVIDENCE_MAX_CHARS


def test_the_probe_records_an_unreachable_target_as_unavailable(tmp_path):
    heard: list = []
    record = controller(tmp_path, heard).on_gate_failed(
        target(availability_interval_s=0.1), "x", driver=SlowDriver([])
    )
    availability = record.availability
    assert availability["sent"] >= 2
    assert availability["answered"] == 0
    assert availability["met"] is False
    assert availability["longest_gap_s"] > 0


class SlowDriver(LoggingDriver):
    def wait_until_serving(self, release, timeout_s):
        time.sleep(0.5)
        return True


def test_the_longest_gap_runs_from_the_first_miss_to_the_next_answer():
    def sample(t: float, ok: bool) -> Sample:
        return Sample("", t, "/api/health", ok, 200 if ok else None, 1.0)

    samples = [sample(0, True), sample(1, False), sample(2, False), sample(3.5, True)]
    assert longest_gap(samples, 4.0) == 2.5
    assert longest_gap([*samples, sample(4, False)], 6.0) == 2.5
    assert longest_gap([sample(0, False)], 3.0) == 3.0
    assert longest_gap([sample(0, True)], 3.0) == 0.0


# -- the watch's defaults ---------------------------------------------------------------------


def test_the_watch_reads_the_plans_environment_variables():
    assert env_defaults({}) == {
        "error_threshold": 5, "latency_threshold_ms": 5000.0, "interval_s": 30.0,
    }  # fmt: skip
    env = {
        "ROLLBACK_ERROR_THRESHOLD": "3",
        "ROLLBACK_RESPONSE_TIME_THRESHOLD": "2500",
        "ROLLBACK_MONITORING_INTERVAL": "10",
    }
    assert env_defaults(env) == {
        "error_threshold": 3, "latency_threshold_ms": 2500.0, "interval_s": 10.0,
    }  # fmt: skip
    assert env_defaults({"ROLLBACK_CHECK_INTERVAL": "1m"})["interval_s"] == 60.0


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ROLLBACK_ERROR_THRESHOLD", "five", "must be a whole number"),
        ("ROLLBACK_ERROR_THRESHOLD", "0", "at least 1"),
        ("ROLLBACK_RESPONSE_TIME_THRESHOLD", "5s", "must be milliseconds"),
        ("ROLLBACK_MONITORING_INTERVAL", "soon", "is not a duration"),
    ],
)
def test_a_bad_plan_variable_is_named_with_the_fix(name, value, says):
    with pytest.raises(ValueError, match=says) as error:
        env_defaults({name: value})
    assert name in str(error.value)


def test_the_watch_command_uses_the_variables_and_says_so(local_env):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "postdeploy.cli", "watch", "--target", "local",
         "--duration", "1s", "--rollback", "off", "--reports-dir", str(local_env.state_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={**local_env.env, "ROLLBACK_ERROR_THRESHOLD": "7",
             "ROLLBACK_MONITORING_INTERVAL": "2s", "ROLLBACK_RESPONSE_TIME_THRESHOLD": "900"},
    )  # fmt: skip
    assert "every 2 s; rollback off after 7 errors" in done.stdout, done.stdout + done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "postdeploy.cli", "watch", "--target", "local"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        env={**local_env.env, "ROLLBACK_ERROR_THRESHOLD": "many"},
    )  # fmt: skip
    assert bad.returncode == 2
    assert "$ROLLBACK_ERROR_THRESHOLD='many' must be a whole number" in bad.stderr


def test_the_evidence_keeps_the_detection_window_only():
    import datetime as dt

    from postdeploy.rollback.controller import in_window

    since = dt.datetime(2026, 11, 28, 22, 0, tzinfo=dt.UTC)
    assert not in_window('{"ts": "2026-11-28T21:59:59.000+00:00", "path": "/"}', since)
    assert in_window('{"ts": "2026-11-28T22:00:01.000+00:00", "path": "/"}', since)
    assert in_window('[instance-1] {"ts": "2026-11-28T22:00:01.000+00:00"}', since)
    assert in_window("INFO:     Started server process [42]", since)
    assert in_window('{"no": "time"}', since)
