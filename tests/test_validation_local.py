"""The suites against the real reference app: green when healthy, each fault caught, and the
gate -> rollback -> verification loop end to end."""

from __future__ import annotations

import json

import pytest

CORE = ("suites/functional", "suites/monitoring/test_health.py")

#: fault -> (checks that must fail, checks that must still pass)
LOGIN = "test_login_returns_a_bearer_token_and_a_session_cookie"
FAULTS = {
    "health_down": (
        {
            "test_health_endpoint_reports_healthy",
            "test_every_dependency_check_is_healthy",
            "test_health_check_pass_rate",
        },
        {"test_learning_content_is_delivered", LOGIN},
    ),
    "login_broken": (
        {LOGIN, "test_user_registration_completes", "test_logout_revokes_the_session"},
        {
            "test_health_endpoint_reports_healthy",
            "test_learning_content_is_delivered",
            "test_registering_an_existing_email_is_refused",
        },
    ),
    "progress_not_persisted": (
        {"test_a_learning_session_is_recorded_and_progress_reflects_it"},
        {
            "test_health_endpoint_reports_healthy",
            "test_logout_revokes_the_session",
            "test_the_learning_profile_round_trips",
        },
    ),
    "wrong_version": (
        {"test_health_reports_the_expected_version"},
        {"test_health_endpoint_reports_healthy", "test_learning_content_is_delivered"},
    ),
    "health_flaky": (
        {"test_health_check_pass_rate"},
        {LOGIN, "test_learning_content_is_delivered"},
    ),
    "duplicate_email_allowed": (
        {"test_registering_an_existing_email_is_refused"},
        {LOGIN, "test_user_registration_completes"},
    ),
    "wrong_password_accepted": ({"test_wrong_password_is_refused"}, {LOGIN}),
    "logout_not_revoking": ({"test_logout_revokes_the_session"}, {LOGIN}),
    "content_missing": (
        {
            "test_learning_content_is_delivered",
            "test_a_single_lesson_is_delivered_by_id",
            "test_api_route_responds_as_documented",
        },
        {LOGIN, "test_health_endpoint_reports_healthy"},
    ),
    "dangling_sessions": (
        {"test_a_session_for_unknown_content_is_refused"},
        {"test_a_learning_session_is_recorded_and_progress_reflects_it"},
    ),
    "profile_not_persisted": (
        {"test_the_learning_profile_round_trips", "test_a_write_is_read_back_from_the_database"},
        {"test_a_learning_session_is_recorded_and_progress_reflects_it"},
    ),
    "account_delete_noop": ({"test_a_deleted_account_is_gone"}, {LOGIN}),
    "validation_errors_500": (
        {"test_invalid_registration_is_rejected", "test_an_unknown_learning_style_is_rejected"},
        {LOGIN, "test_the_learning_profile_round_trips"},
    ),
    "pages_broken": ({"test_html_page_is_served"}, {LOGIN, "test_learning_content_is_delivered"}),
    "plain_404": (
        {"test_an_unknown_route_answers_a_json_404"},
        {"test_an_unknown_lesson_is_not_found", LOGIN},
    ),
}


def test_a_healthy_release_passes_every_check(local_env):
    local_env.platform.deploy("1.0.0")
    run = local_env.run(suites=CORE)
    assert run.returncode == 0, run.output[-3000:]
    assert run.target()["gate"] == "passed"
    assert not run.failed()
    assert run.target()["serving_version"] == "1.0.0"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_caught_by_its_check(local_env, fault):
    must_fail, must_pass = FAULTS[fault]
    local_env.platform.deploy("1.1.0", [fault])
    selected = " or ".join(sorted(must_fail | must_pass))
    run = local_env.run("--expect-version", "1.1.0", "-k", selected, suites=CORE)
    missed = must_fail - run.failed()
    assert not missed, f"not caught: {missed}\n{run.output[-3000:]}"
    assert must_pass <= run.passed(), f"collateral: {must_pass - run.passed()}"
    assert run.returncode == 1
    gating_failed = any(f["gating"] and f["kind"] == "failed" for f in run.target()["failures"])
    assert run.target()["gate"] == ("failed" if gating_failed else "passed")


def test_a_failing_gate_rolls_back_verifies_and_records_it(local_env):
    platform = local_env.platform
    good = platform.deploy("1.0.0")
    # the gate of the good release writes the data marker a later rollback reads back
    assert local_env.run("-m", "gating", "--rollback", "auto", suites=CORE).returncode == 0
    bad = platform.deploy("2.0.0", ["login_broken"])
    run = local_env.run("-m", "gating", "--rollback", "auto", suites=CORE)

    assert run.returncode == 1, "a failed gate fails the run even when the rollback succeeded"
    verdict = run.target()
    assert verdict["gate"] == "failed"
    rollback = verdict["rollback"]
    assert rollback["status"] == "succeeded", rollback
    assert rollback["from_release"]["id"] == str(bad.id)
    assert rollback["to_release"]["id"] == str(good.id)
    assert rollback["verification"]["status"] == "passed"
    assert rollback["verification"]["expect_version"] == "1.0.0"
    assert rollback["verification"]["data"]["status"] == "passed"
    assert rollback["detection_to_call_s"] < 1.0

    current = platform.current()
    assert (current.version, current.faults) == ("1.0.0", ())

    audit = (local_env.reports_root / f"run-{local_env.runs}" / "rollback-audit.jsonl").read_text()
    events = [json.loads(line)["event"] for line in audit.splitlines()]
    assert events == [
        "data_marker",
        "gate_failed",
        "rollback_started",
        "rollback_serving",
        "rollback_succeeded",
    ]


def test_a_dry_run_records_the_decision_and_changes_nothing(local_env):
    platform = local_env.platform
    platform.deploy("1.0.0")
    bad = platform.deploy("2.0.0", ["health_down"])
    run = local_env.run("-m", "gating", "--rollback", "dry-run", suites=CORE)
    rollback = run.target()["rollback"]
    assert rollback["status"] == "dry-run"
    assert rollback["calls"]
    assert "redeploy release" in rollback["calls"][0]
    assert platform.current().id == bad.id
    assert "would call: postdeploy local: redeploy release" in run.output


def test_nothing_deployed_deploys_a_healthy_release_and_stops_it_afterwards(local_env):
    local_env.platform.stop()
    run = local_env.run("-m", "gating", suites=CORE)
    assert run.returncode == 0, run.output[-3000:]
    assert run.target()["serving_version"] == "1.0.0"
    assert local_env.platform.current() is None


def test_the_suites_run_under_xdist(local_env):
    local_env.platform.deploy("1.0.0")
    run = local_env.run("-n", "2", suites=CORE)
    assert run.returncode == 0, run.output[-3000:]
    assert run.target()["gate"] == "passed"
    assert run.target()["counts"]["passed"] >= 30


def test_a_failing_http_check_attaches_the_exchange_with_credentials_redacted(local_env):
    local_env.platform.deploy("1.0.0", ["login_broken"])
    run = local_env.run("-k", "test_login_returns_a_bearer_token", suites=CORE)
    assert run.failed() == {"test_login_returns_a_bearer_token_and_a_session_cookie"}
    results = local_env.reports_root / f"run-{local_env.runs}" / "allure-results"
    attachments = [p.read_text() for p in results.glob("*-attachment*")]
    exchanges = [text for text in attachments if "> POST" in text and "/api/auth/login" in text]
    assert exchanges, "no HTTP exchange attached to the failing check"
    exchange = exchanges[0]
    assert '"password": "[REDACTED]"' in exchange
    assert "< HTTP 401" in exchange
    assert "invalid_credentials" in exchange
