"""The rollback controller's decisions, with an in-memory driver."""

from __future__ import annotations

import json

import pytest

from postdeploy.config import Section, Target
from postdeploy.rollback.base import Call, DriverError, Release, previous_good
from postdeploy.rollback.controller import AuditLog, Mode, RollbackController, Status
from postdeploy.rollback.ledger import Ledger

RELEASES = [
    Release("v3", "3.0.0", ref="img:3"),
    Release("v2", "2.0.0", ref="img:2"),
    Release("v1", "1.0.0", ref="img:1"),
]


class MemoryDriver:
    """A platform in memory: releases newest first, the first one serving."""

    platform = "memory"

    def __init__(self, releases=RELEASES, fail_with: Exception | None = None, serves=True):
        self.history = list(releases)
        self.fail_with = fail_with
        self.serves = serves
        self.rollbacks: list[str] = []

    def preflight(self):
        pass

    def releases(self):
        return list(self.history)

    def current(self):
        return self.history[0]

    def plan(self, to):
        return [Call(f"redeploy {to.ref}")]

    def rollback(self, to):
        if self.fail_with:
            raise self.fail_with
        self.rollbacks.append(to.id)
        new = Release(f"v{len(self.history) + 1}", to.version, ref=to.ref)
        self.history.insert(0, new)
        return new

    def wait_until_serving(self, release, timeout_s):
        return self.serves

    def logs(self, limit=200):
        return []


def make_target(allowed=True, cooldown_s=0.0) -> Target:
    rollback = {
        "allowed": allowed,
        "wait_timeout_s": 5.0,
        "cooldown_s": cooldown_s,
        "poll_interval_s": 0.1,
    }
    return Target(
        name="web",
        platform="memory",
        url="https://web.example.com",
        sections={"rollback": Section("rollback", rollback)},
    )


@pytest.fixture
def audit(tmp_path):
    return AuditLog(tmp_path / "audit.jsonl", "run-1")


def controller(mode, audit, verified="passed"):
    ledger = Ledger(audit.path.parent / "ledger")
    return RollbackController(Mode(mode), audit, lambda target, **_: {"status": verified}, ledger)


def events(audit) -> list[str]:
    return [json.loads(line)["event"] for line in audit.path.read_text().splitlines()]


def test_auto_rolls_back_to_the_previous_release_once(audit):
    driver = MemoryDriver()
    rollbacks = controller("auto", audit)
    record = rollbacks.on_gate_failed(make_target(), "health failed", driver=driver)
    again = rollbacks.on_gate_failed(make_target(), "still failing", driver=driver)
    assert record.status is Status.SUCCEEDED
    assert again is record
    assert driver.rollbacks == ["v2"]
    assert events(audit) == ["gate_failed", "rollback_started", "rollback_serving",
                             "rollback_succeeded"]  # fmt: skip


def test_dry_run_records_the_calls_and_calls_nothing(audit):
    driver = MemoryDriver()
    record = controller("dry-run", audit).on_gate_failed(make_target(), "x", driver=driver)
    assert record.status is Status.DRY_RUN
    assert record.calls == ["redeploy img:2"]
    assert driver.rollbacks == []


def test_off_does_nothing(audit):
    record = controller("off", audit).on_gate_failed(make_target(), "x", driver=MemoryDriver())
    assert record.status is Status.NOT_NEEDED
    assert not audit.path.exists()


def test_a_target_that_forbids_rollback_escalates(audit):
    driver = MemoryDriver()
    record = controller("auto", audit).on_gate_failed(make_target(False), "x", driver=driver)
    assert record.status is Status.SKIPPED
    assert record.escalate
    assert driver.rollbacks == []


def test_no_earlier_release_is_a_failed_rollback(audit):
    record = controller("auto", audit).on_gate_failed(
        make_target(), "x", driver=MemoryDriver(releases=RELEASES[:1])
    )
    assert record.status is Status.FAILED
    assert "no earlier release" in record.reason
    assert record.escalate


@pytest.mark.parametrize(
    "error", [DriverError("render answered 409: a deploy is in progress"), RuntimeError("bug")]
)
def test_driver_errors_are_failed_rollbacks_never_crashes(audit, error):
    record = controller("auto", audit).on_gate_failed(
        make_target(), "x", driver=MemoryDriver(fail_with=error)
    )
    assert record.status is Status.FAILED
    assert record.escalate


def test_a_release_that_never_serves_is_a_failed_rollback(audit):
    record = controller("auto", audit).on_gate_failed(
        make_target(), "x", driver=MemoryDriver(serves=False)
    )
    assert record.status is Status.FAILED
    assert "not serving within" in record.reason


def test_failed_verification_escalates(audit):
    record = controller("auto", audit, verified="failed").on_gate_failed(
        make_target(), "x", driver=MemoryDriver()
    )
    assert record.status is Status.FAILED
    assert "verification failed" in record.reason
    assert record.escalate


def test_previous_good_skips_the_failing_image_and_unrollbackable_releases():
    releases = [
        Release("d4", ref="img:9"),
        Release("d3", ref="img:9"),  # same image as the failing one: a loop
        Release("d2", ref="img:8", can_rollback=False),
        Release("d1", ref="img:7"),
    ]
    assert previous_good(releases, releases[0]).id == "d1"
    assert previous_good(releases[:3], releases[0]) is None


def test_a_second_rollback_inside_the_cooldown_escalates_instead(audit):
    target = make_target(cooldown_s=3600)
    first = controller("auto", audit).on_gate_failed(target, "x", driver=MemoryDriver())
    assert first.status is Status.SUCCEEDED
    driver = MemoryDriver()
    second = controller("auto", audit).on_gate_failed(target, "x", driver=driver)  # a new run
    assert second.status is Status.SKIPPED
    assert second.escalate
    assert "the stable release is failing too" in second.reason
    assert driver.rollbacks == []


def test_a_run_that_finds_the_lock_held_stands_aside(audit):
    rollbacks = controller("auto", audit)
    driver = MemoryDriver()
    with rollbacks.ledger.hold("web") as acquired:  # another run is rolling back
        assert acquired
        record = rollbacks.on_gate_failed(make_target(), "x", driver=driver)
    assert record.status is Status.SKIPPED
    assert "holds the rollback lock" in record.reason
    assert driver.rollbacks == []


def test_no_secret_reaches_the_audit_log_or_the_reason(audit, monkeypatch):
    monkeypatch.setenv("WEB_TOKEN", "s3cr3t-t0ken-value")
    target = make_target()
    target = Target(
        name=target.name, platform=target.platform, url=target.url,
        settings={"token_env": "WEB_TOKEN"}, sections=target.sections,
    )  # fmt: skip
    error = DriverError("the platform said no to token s3cr3t-t0ken-value")
    record = controller("auto", audit).on_gate_failed(
        target, "x", driver=MemoryDriver(fail_with=error)
    )
    assert "s3cr3t-t0ken-value" not in record.reason
    assert "s3cr3t-t0ken-value" not in audit.path.read_text()
