"""The suites against the real reference app: green when healthy, each fault caught, and the
gate -> rollback -> verification loop end to end."""

from __future__ import annotations

import json

import pytest

CORE = ("suites/functional", "suites/monitoring/test_health.py")

#: fault -> ({check that must fail: words its failure message must hold}, checks that must pass)
LOGIN = "test_login_returns_a_bearer_token_and_a_session_cookie"
LOGIN_401 = "POST /api/auth/login, got 401"
FAULTS: dict[str, tuple[dict[str, str], set[str]]] = {
    "health_down": (
        {
            "test_health_endpoint_reports_healthy": "GET /api/health, got 503",
            "test_every_dependency_check_is_healthy": "unhealthy dependencies: {'database'",
            "test_health_check_pass_rate": "0 of 5 health probes passed",
        },
        {"test_learning_content_is_delivered", LOGIN},
    ),
    "login_broken": (
        {LOGIN: LOGIN_401, "test_user_registration_completes": LOGIN_401,
         "test_logout_revokes_the_session": LOGIN_401},
        {
            "test_health_endpoint_reports_healthy",
            "test_learning_content_is_delivered",
            "test_registering_an_existing_email_is_refused",
        },
    ),
    "progress_not_persisted": (
        {"test_a_learning_session_is_recorded_and_progress_reflects_it":
            "progress did not count the new session"},
        {
            "test_health_endpoint_reports_healthy",
            "test_logout_revokes_the_session",
            "test_the_learning_profile_round_trips",
        },
    ),
    "wrong_version": (
        {"test_health_reports_the_expected_version": "do(es) not report version"},
        {"test_health_endpoint_reports_healthy", "test_learning_content_is_delivered"},
    ),
    "health_flaky": (
        {"test_health_check_pass_rate": "of 5 health probes passed"},
        {LOGIN, "test_learning_content_is_delivered"},
    ),
    "duplicate_email_allowed": (
        {"test_registering_an_existing_email_is_refused":
            "expected HTTP 409 from POST /api/auth/register, got 201"},
        {LOGIN, "test_user_registration_completes"},
    ),
    "wrong_password_accepted": (
        {"test_wrong_password_is_refused": "expected HTTP 401 from POST /api/auth/login, got 200"},
        {LOGIN},
    ),
    "logout_not_revoking": (
        {"test_logout_revokes_the_session": "expected HTTP 401 from GET /api/auth/me, got 200"},
        {LOGIN},
    ),
    "content_missing": (
        {
            "test_learning_content_is_delivered": "delivered no lessons",
            "test_a_single_lesson_is_delivered_by_id": "delivered no lessons",
            "test_api_route_responds_as_documented": "GET /api/learning/content/1, got 404",
        },
        {LOGIN, "test_health_endpoint_reports_healthy"},
    ),
    "dangling_sessions": (
        {"test_a_session_for_unknown_content_is_refused":
            "expected HTTP 404 from POST /api/learning/session, got 500"},
        {"test_a_learning_session_is_recorded_and_progress_reflects_it"},
    ),
    "profile_not_persisted": (
        {"test_the_learning_profile_round_trips": "the profile was not stored",
         "test_a_write_is_read_back_from_the_database": "read back None"},
        {"test_a_learning_session_is_recorded_and_progress_reflects_it"},
    ),
    "account_delete_noop": (
        {"test_a_deleted_account_is_gone": "the deleted account still logs in"}, {LOGIN}
    ),
    "validation_errors_500": (
        {"test_invalid_registration_is_rejected": "POST /api/auth/register, got 500",
         "test_an_unknown_learning_style_is_rejected": "PUT /api/learning/profile, got 500"},
        {LOGIN, "test_the_learning_profile_round_trips"},
    ),
    "pages_broken": (
        {"test_html_page_is_served": "expected HTTP 200 from GET /, got 500"},
        {LOGIN, "test_learning_content_is_delivered"},
    ),
    "plain_404": (
        {"test_an_unknown_route_answers_a_json_404":
            "expected a JSON body from GET /api/does-not-exist"},
        {"test_an_unknown_lesson_is_not_found", LOGIN},
    ),
}  # fmt: skip


def test_a_healthy_release_passes_every_check(local_env):
    local_env.platform.deploy("1.0.0")
    run = local_env.run(suites=CORE)
    assert run.returncode == 0, run.output[-3000:]
    assert run.target()["gate"] == "passed"
    assert not run.failed()
    assert not run.broken(), run.target()["failures"]
    assert run.target()["serving_version"] == "1.0.0"


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_caught_by_its_check(local_env, fault):
    caught_by, must_pass = FAULTS[fault]
    must_fail = set(caught_by)
    local_env.platform.deploy("1.1.0", [fault])
    selected = " or ".join(sorted(must_fail | must_pass))
    run = local_env.run("--expect-version", "1.1.0", "-k", selected, suites=CORE)
    run.assert_caught(caught_by)
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
