"""A rollback's verification, in parts: what the controller hands the verifier, the verifier's
command line, and the data marker written before a rollback and read back after it (against an
in-memory stand-in of the app's API; tests/test_verification_local.py uses the real app)."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from postdeploy.config import Target
from postdeploy.rollback.consistency import DataMarkers, MarkerStore
from postdeploy.rollback.controller import AuditLog, Mode, RollbackController, Verifier
from postdeploy.rollback.ledger import Ledger
from tests.test_controller import MemoryDriver, make_target

PASSWORD_FIELD = "password"
#: The reference app's limit on a learning session's duration (its models.MAX_DURATION_S).
MAX_DURATION_S = 86_400


@dataclass
class AppStandIn:
    """The Learning Assistant's accounts, lessons, sessions and progress, in memory."""

    users: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, list[dict]] = field(default_factory=dict)
    login_broken: bool = False
    session_broken: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        path = request.url.path
        if path == "/api/auth/register":
            if body["email"] in self.users:
                return httpx.Response(409, json={"error": {"code": "email_taken"}})
            self.users[body["email"]] = body[PASSWORD_FIELD]
            return httpx.Response(201, json={"id": len(self.users), "email": body["email"]})
        if path == "/api/auth/login":
            if self.login_broken or self.users.get(body["email"]) != body[PASSWORD_FIELD]:
                return httpx.Response(401, json={"error": {"code": "invalid_credentials"}})
            return httpx.Response(200, json={"access_token": f"tok-{body['email']}"})
        if path == "/api/learning/content":
            return httpx.Response(200, json={"items": [{"id": 1, "title": "Intro"}]})
        email = token.removeprefix("tok-")
        if email not in self.users:
            return httpx.Response(401, json={"error": {"code": "unauthorized"}})
        mine = self.sessions.setdefault(email, [])
        if path == "/api/learning/session":
            if self.session_broken:
                return httpx.Response(500, json={"error": {"code": "internal"}})
            if not 0 <= body["duration_s"] <= MAX_DURATION_S:  # the app's own limit
                return httpx.Response(422, json={"error": {"code": "validation_error"}})
            mine.append(body)
            return httpx.Response(201, json={"id": len(mine), **body, "completed_at": "now"})
        if path == "/api/learning/progress":
            return httpx.Response(
                200,
                json={
                    "completed_lessons": len({s["content_id"] for s in mine}),
                    "sessions": len(mine),
                    "total_time_s": sum(s["duration_s"] for s in mine),
                    "average_score": None,
                    "lesson_ids": sorted({s["content_id"] for s in mine}),
                },
            )
        return httpx.Response(404, json={"error": {"code": "not_found"}})

    def client(self, target: Target) -> httpx.Client:
        return httpx.Client(base_url=target.url, transport=httpx.MockTransport(self.handle))


@pytest.fixture
def app() -> AppStandIn:
    return AppStandIn()


def markers(app: AppStandIn, state: Path, run_id: str) -> DataMarkers:
    return DataMarkers(run_id, state_dir=state, client=app.client)


# -- the controller hands the verifier the run's gating checks and the restored version -------


class VersionedDriver(MemoryDriver):
    def current_app_version(self) -> str:
        return "1.0.0"


def test_the_verifier_gets_every_gating_check_of_the_run_and_the_restored_version(tmp_path):
    seen: dict = {}

    def verifier(target, **kwargs):
        seen.update(kwargs)
        return {"status": "passed"}

    audit = AuditLog(tmp_path / "audit.jsonl", "run-1")
    controller = RollbackController(Mode.AUTO, audit, verifier, Ledger(tmp_path / "ledger"))
    checks = ["suites/functional/test_a.py::test_login[web]", "suites/x.py::test_health[web]"]
    controller.gating_checks["web"] = checks
    controller.on_gate_failed(make_target(), "x", driver=VersionedDriver())
    assert seen == {"checks": tuple(checks), "expect_version": "1.0.0", "only_gating": False}


def test_a_driver_that_cannot_tell_the_version_expects_none(tmp_path):
    seen: dict = {}
    audit = AuditLog(tmp_path / "audit.jsonl", "run-1")
    controller = RollbackController(
        Mode.AUTO, audit, lambda target, **kw: seen.update(kw) or {"status": "passed"},
        Ledger(tmp_path / "ledger"),
    )  # fmt: skip
    controller.on_gate_failed(make_target(), "x", driver=MemoryDriver())
    assert seen["expect_version"] is None


def test_the_verification_command_reruns_the_checks_with_the_version_expected(tmp_path):
    verifier = Verifier(tmp_path, tmp_path / "targets.toml", tmp_path / "reports")
    checks = ["suites/functional/test_a.py::test_login[web]"]
    command = verifier._command(make_target(), checks, "1.0.0", tmp_path / "out")
    assert checks[0] in command
    assert f"--targets-file={tmp_path / 'targets.toml'}" in command
    assert f"--reports-dir={tmp_path / 'out'}" in command
    assert f"--rootdir={tmp_path}" in command
    assert "--expect-version=1.0.0" in command
    assert command[command.index("--rollback") + 1] == "off"
    assert "gating" not in command, "the run's own gating checks, not a marker selection"


def test_without_checks_of_the_run_the_health_suite_s_gating_checks_are_rerun(tmp_path):
    verifier = Verifier(tmp_path, tmp_path / "targets.toml", tmp_path / "reports")
    command = verifier._command(make_target(), [], None, tmp_path / "out")
    assert str(tmp_path / "suites" / "monitoring" / "test_health.py") in command
    assert command[command.index("gating") - 1] == "-m"
    assert not any(part.startswith("--expect-version") for part in command)


# -- the data marker ----------------------------------------------------------------------


def test_a_marker_written_before_is_read_back_intact(app, tmp_path):
    assert markers(app, tmp_path, "run-1").write(make_target())["status"] == "written"
    result = markers(app, tmp_path, "run-1").read_back(make_target())
    assert result["status"] == "passed", result
    assert result["marker_run_id"] == "run-1"
    assert "this run's marker is intact" in result["reason"]


def test_a_lost_account_fails_the_read_back(app, tmp_path):
    markers(app, tmp_path, "run-1").write(make_target())
    app.users.clear()  # the database was wiped by the rollback
    result = markers(app, tmp_path, "run-1").read_back(make_target())
    assert result["status"] == "failed"
    assert "could not be read back" in result["reason"]
    assert "401" in result["reason"]


@pytest.mark.parametrize("change", ["lost", "altered"])
def test_a_missing_or_changed_record_fails_the_read_back(app, tmp_path, change):
    markers(app, tmp_path, "run-1").write(make_target())
    (sessions,) = app.sessions.values()
    if change == "lost":
        sessions.clear()
    else:
        sessions[0]["duration_s"] += 1
    result = markers(app, tmp_path, "run-1").read_back(make_target())
    assert result["status"] == "failed"
    assert "missing or changed" in result["reason"]
    assert result["found"] != result["expected"]


def test_a_release_that_cannot_write_falls_back_to_the_earlier_run_s_marker(app, tmp_path):
    markers(app, tmp_path, "run-1").write(make_target())
    app.login_broken = True
    written = markers(app, tmp_path, "run-2").write(make_target())
    assert written["status"] == "not-written"
    assert "login is broken" in written["reason"]
    app.login_broken = False  # the rollback restored a release whose login works
    result = markers(app, tmp_path, "run-2").read_back(make_target())
    assert result["status"] == "passed", result
    assert result["marker_run_id"] == "run-1"
    assert "the marker of run run-1" in result["reason"]


def test_a_refused_write_keeps_the_earlier_marker(app, tmp_path):
    markers(app, tmp_path, "run-1").write(make_target())
    app.session_broken = True
    written = markers(app, tmp_path, "run-2").write(make_target())
    assert written["status"] == "not-written"
    assert "500" in written["reason"]
    assert markers(app, tmp_path, "run-2").read_back(make_target())["marker_run_id"] == "run-1"


def test_no_marker_ever_written_fails_the_read_back_instead_of_passing_on_no_data(app, tmp_path):
    app.login_broken = True
    markers(app, tmp_path, "run-1").write(make_target())
    result = markers(app, tmp_path, "run-1").read_back(make_target())
    assert result["status"] == "failed"
    assert "no marker record was ever written" in result["reason"]


def test_the_marker_account_is_kept_private_and_reused(app, tmp_path):
    first = markers(app, tmp_path, "run-1").write(make_target())
    second = markers(app, tmp_path, "run-2").write(make_target())
    assert len(app.users) == 1, "the next run logs in with the kept account"
    store = MarkerStore.for_target(make_target(), tmp_path)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    password = store.load()["account"][PASSWORD_FIELD]
    for text in (json.dumps(first), json.dumps(second)):
        assert password not in text
    assert password not in json.dumps(markers(app, tmp_path, "run-2").read_back(make_target()))


def test_an_unreadable_marker_file_is_the_harness_s_error_with_the_fix(app, tmp_path):
    from postdeploy.rollback.consistency import MarkerError

    store = MarkerStore.for_target(make_target(), tmp_path)
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    with pytest.raises(MarkerError, match="delete it to start over"):
        markers(app, tmp_path, "run-1").write(make_target())


def test_the_verifier_fails_when_the_data_is_gone_even_if_the_checks_pass(app, tmp_path):
    data = markers(app, tmp_path, "run-1")
    data.write(make_target())
    app.users.clear()
    verifier = Verifier(tmp_path, tmp_path / "targets.toml", tmp_path / "reports", markers=data)
    verifier._rerun = lambda *_: {"status": "passed", "checks": []}  # type: ignore[method-assign]
    result = verifier(make_target())
    assert result["status"] == "failed"
    assert result["data"]["status"] == "failed"
    assert result["reason"].startswith("data consistency:")


def test_junit_names_map_back_to_node_ids_with_classes_and_params(tmp_path):
    from postdeploy.rollback.controller import _junit_key, _junit_outcomes

    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="suites.functional.test_a" name="test_login[web]">'
        '<failure message="no"/></testcase>'
        '<testcase classname="suites.functional.test_a.TestB" name="test_c[web]"/>'
        '<testcase classname="suites.x" name="test_d[web]"><error message="bug"/></testcase>'
        "</testsuite></testsuites>"
    )
    outcomes = _junit_outcomes(junit)
    assert outcomes[_junit_key("suites/functional/test_a.py::test_login[web]")] == "failed"
    assert outcomes[_junit_key("suites/functional/test_a.py::TestB::test_c[web]")] == "passed"
    assert outcomes[_junit_key("suites/x.py::test_d[web]")] == "broken"


def test_under_xdist_the_collected_ids_are_rerun_keeping_the_gating_ones(tmp_path):
    verifier = Verifier(tmp_path, tmp_path / "targets.toml", tmp_path / "reports")
    checks = ["suites/a.py::test_x[web]"]
    command = verifier._command(make_target(), checks, None, tmp_path / "out", only_gating=True)
    assert command[command.index(checks[0]) + 1 : command.index(checks[0]) + 3] == ["-m", "gating"]


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("suites/a.py::test_x[local]", "local"),
        ("suites/a.py::test_x[local-prod]", "local-prod"),
        ("suites/a.py::test_x[local-GET /api/health]", "local"),
        ("suites/a.py::test_x[3-local-prod]", "local-prod"),
        ("suites/a.py::test_x[fly]", None),
        ("suites/a.py::test_x", None),
    ],
)
def test_the_target_of_a_node_id_is_its_longest_matching_parameter(nodeid, expected):
    from postdeploy.run import target_of_nodeid

    assert target_of_nodeid(nodeid, ["local", "local-prod"]) == expected


def test_every_marker_session_is_one_the_app_accepts():
    from postdeploy.rollback.consistency import DURATION_RANGE_S

    low, high = DURATION_RANGE_S
    assert 0 < low < high <= MAX_DURATION_S


def test_a_target_that_opts_out_keeps_no_marker_and_says_so(app, tmp_path):
    from postdeploy.config import Section

    target = make_target()
    sections = {**target.sections}
    sections["rollback"] = Section("rollback", {**sections["rollback"], "verify_data": False})
    target = Target(name=target.name, platform=target.platform, url=target.url, sections=sections)
    assert markers(app, tmp_path, "run-1").write(target)["status"] == "not-written"
    assert app.users == {}, "nothing is written"
    result = markers(app, tmp_path, "run-1").read_back(target)
    assert result["status"] == "not-run"
    assert "verify_data is false" in result["reason"]
