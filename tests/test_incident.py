"""The incident path end to end: a real run against the real local app, real local receivers.

A ``health_down`` release with ``--rollback auto`` is rolled back while every channel listens:
Slack, Teams and PagerDuty (a real HTTP receiver), e-mail (a real SMTP server with STARTTLS)
and Statuspage (the stand-in of its documented API). A ``slow_endpoint`` release is Sev 2 and
does not page. The local platform's single instance stops during a rollback, so availability
during it is below the objective - and reported.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.standins.receiver import Receiver
from tests.standins.smtp import SmtpServer
from tests.standins.statuspage import StatuspageStandin

HEALTH = ("suites/monitoring/test_health.py",)
SLOW = ("suites/monitoring/test_health.py", "suites/performance/test_response_times.py")
SLACK_SECRET = "T000/B000/incidentslackpath"
TEAMS_SECRET = "workflows/abcdef0123/triggers/manual/paths/invoke?sig=teamssignature0123"
ROUTING_KEY = "R0UT1NGKEYINCIDENT0123456789"
STATUSPAGE_KEY = "statuspagekey0123456789abcdef"
SMTP_PASSWORD = "smtp-passw0rd-incident-0123"
PAGE_ID = "pg0123456789"
COMPONENT_ID = "cmp0123456789"
SECRETS = (SLACK_SECRET, "teamssignature0123", ROUTING_KEY, STATUSPAGE_KEY, SMTP_PASSWORD)


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def statuspage():
    with StatuspageStandin(PAGE_ID, STATUSPAGE_KEY) as running:
        yield running


@pytest.fixture
def smtp(tmp_path: Path):
    with SmtpServer(tmp_path, "postdeploy", SMTP_PASSWORD) as running:
        yield running


def channel_env(receiver: Receiver, statuspage: StatuspageStandin, smtp: SmtpServer) -> dict:
    prefix = "POSTDEPLOY_LOCAL_NOTIFY_"
    return {
        f"{prefix}SLACK_WEBHOOK_ENV": "INCIDENT_SLACK",
        "INCIDENT_SLACK": f"{receiver.url}/services/{SLACK_SECRET}",
        f"{prefix}TEAMS_WEBHOOK_ENV": "INCIDENT_TEAMS",
        "INCIDENT_TEAMS": f"{receiver.url}/{TEAMS_SECRET}",
        f"{prefix}PAGERDUTY_ROUTING_KEY_ENV": "INCIDENT_PD",
        "INCIDENT_PD": ROUTING_KEY,
        f"{prefix}PAGERDUTY_URL": f"{receiver.url}/v2/enqueue",
        f"{prefix}STATUSPAGE_API_KEY_ENV": "INCIDENT_STATUSPAGE",
        "INCIDENT_STATUSPAGE": STATUSPAGE_KEY,
        f"{prefix}STATUSPAGE_URL": statuspage.url,
        f"{prefix}STATUSPAGE_PAGE_ID": PAGE_ID,
        f"{prefix}STATUSPAGE_COMPONENT_ID": COMPONENT_ID,
        f"{prefix}SMTP_HOST": "127.0.0.1",
        f"{prefix}SMTP_PORT": str(smtp.port),
        f"{prefix}SMTP_CA_FILE": str(smtp.ca_file),
        f"{prefix}SMTP_USERNAME_ENV": "INCIDENT_SMTP_USER",
        "INCIDENT_SMTP_USER": "postdeploy",
        f"{prefix}SMTP_PASSWORD_ENV": "INCIDENT_SMTP_PASSWORD",
        "INCIDENT_SMTP_PASSWORD": SMTP_PASSWORD,
        f"{prefix}EMAIL_FROM": "postdeploy@example.com",
        f"{prefix}EMAIL_TO": "oncall@example.com,releases@example.com",
    }


def at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def sent(receiver: Receiver, prefix: str) -> list:
    return [r for r in receiver.received if r.path.startswith(prefix)]


@pytest.fixture(scope="module")
def health_down(local_env, tmp_path_factory):
    """One real run: a health_down release rolled back while every channel listens."""
    directory = tmp_path_factory.mktemp("incident")
    with (
        Receiver() as receiver,
        StatuspageStandin(PAGE_ID, STATUSPAGE_KEY) as statuspage,
        SmtpServer(directory, "postdeploy", SMTP_PASSWORD) as smtp,
    ):
        local_env.platform.deploy("1.0.0")
        local_env.platform.deploy("2.0.0", ["health_down"])
        run = local_env.run(
            "-m", "gating", "--rollback", "auto", "--alluredir", str(directory / "allure"),
            suites=HEALTH, env=channel_env(receiver, statuspage, smtp),
        )  # fmt: skip
        yield run, receiver, statuspage, smtp, directory / "allure"


def test_the_receivers_hear_initiated_before_the_rollback_finishes_then_verified(health_down):
    run, receiver, _, _, _ = health_down
    rollback = run.target()["rollback"]
    assert rollback["status"] == "succeeded", run.output[-3000:]
    serving = at(next(e["at"] for e in rollback["timeline"] if e["event"] == "serving"))
    for prefix, text in (("/services/", lambda b: b["text"]), ("/workflows/", str)):
        messages = sent(receiver, prefix)
        texts = [text(m.body) for m in messages]
        assert len(messages) == 3, texts  # initiated, completed, summary
        assert "emergency rollback initiated" in texts[0]
        assert messages[0].at < serving, "the 'initiated' message came after the rollback"
        assert "rollback completed, verification passed" in texts[1]
        assert "gate failed" in texts[2]


def test_pagerduty_gets_one_incident_triggered_then_resolved(health_down):
    _run, receiver, _, _, _ = health_down
    events = [m.body for m in sent(receiver, "/v2/enqueue")]
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in events} == {"postdeploy/local/2.0.0"}
    assert events[0]["payload"]["severity"] == "critical"
    assert events[0]["payload"]["custom_details"]["incident_severity"] == "Sev 1"


def test_sev_1_everywhere(health_down, tmp_path):
    run, receiver, statuspage, smtp, _ = health_down
    severity = run.target()["severity"]
    assert (severity["level"], severity["pages"]) == (1, True)
    assert any("test_health.py" in reason for reason in severity["reasons"])
    assert "severity: Sev 1 (pages)" in run.output
    assert "[Sev 1 CRITICAL]" in sent(receiver, "/services/")[0].body["text"]
    card = sent(receiver, "/workflows/")[0].body["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    facts = {f["title"]: f["value"] for f in card["content"]["body"][2]["facts"]}
    assert facts["Severity"].startswith("Sev 1")
    assert all(m["Subject"].startswith("[postdeploy] [Sev 1 CRITICAL]") for m in smtp.messages)
    assert "Sev 1" in next(iter(statuspage.incidents.values())).updates[0]["body"]


def test_email_goes_over_starttls_with_the_credentials_to_every_recipient(health_down):
    run, _, _, smtp, _ = health_down
    assert len(smtp.messages) == 3
    assert smtp.envelopes[0] == (
        "postdeploy@example.com",
        ["oncall@example.com", "releases@example.com"],
    )
    assert "emergency rollback initiated" in smtp.messages[0]["Subject"]
    body = smtp.messages[1].get_content()
    assert "rollback completed, verification passed" in body
    assert "initiated" in body
    assert "verified" in body
    email = [n for n in run.target()["notifications"] if n["channel"] == "email"]
    assert [n["ok"] for n in email] == [True, True, True]


def test_the_status_page_incident_is_opened_with_the_component_and_resolved(health_down):
    _, _, statuspage, _, _ = health_down
    (incident,) = statuspage.incidents.values()
    assert [u["status"] for u in incident.updates] == ["identified", "resolved"]
    assert statuspage.component_status == {COMPONENT_ID: "operational"}
    assert [method for method, _, _ in statuspage.requests] == ["POST", "PATCH"]
    opened = statuspage.requests[0][2]["incident"]
    assert opened["components"] == {COMPONENT_ID: "major_outage"}


def test_the_verdict_has_the_timeline_the_objectives_and_the_availability(health_down):
    run, _, _, _, _ = health_down
    rollback = run.target()["rollback"]
    assert [e["event"] for e in rollback["timeline"]] == [
        "detected", "initiated", "serving", "verified",
    ]  # fmt: skip
    times = [e["t_s"] for e in rollback["timeline"]]
    assert times == sorted(times)
    objectives = rollback["objectives"]
    assert objectives["rollback_objective_s"] == 300
    assert objectives["recovery_objective_s"] == 600
    assert objectives["rollback_met"]
    assert objectives["recovery_met"]
    assert objectives["rollback_s"] == rollback["duration_s"]
    availability = rollback["availability"]
    assert availability["sent"] >= 2
    assert availability["timeline"]
    assert availability["sent"] == len(availability["timeline"])
    assert "rollback time" in run.output
    assert "availability during the rollback" in run.output


def test_a_rollback_that_stops_the_only_instance_misses_the_availability_objective(health_down):
    run, _, _, _, _ = health_down
    availability = run.target()["rollback"]["availability"]
    assert availability["availability"] < availability["objective"] == 0.999
    assert availability["met"] is False
    assert availability["longest_gap_s"] > 0
    assert any(not sample["ok"] for sample in availability["timeline"])
    assert "MISSED" in run.output


def test_the_failing_releases_logs_are_kept_attached_and_referenced(health_down):
    run, _, _, _, allure_dir = health_down
    evidence = run.target()["rollback"]["evidence"]
    assert evidence["release"] == "2"
    text = Path(evidence["file"]).read_text()
    assert "/api/health" in text
    assert "503" in text
    assert evidence["lines"] == len(text.splitlines()) > 0
    attachments = [p.read_text() for p in allure_dir.glob("*-attachment*")]
    assert any("/api/health" in a and "503" in a for a in attachments)
    assert any("initiated" in a and "verified" in a for a in attachments)


def test_no_secret_reaches_the_verdict_the_output_or_a_receiver(health_down):
    run, receiver, statuspage, smtp, _ = health_down
    # PagerDuty must get its routing key (in the event body), nobody else
    bodies = [str(r.body) for r in receiver.received if not r.path.startswith("/v2/enqueue")]
    bodies += [str(r.body).replace(ROUTING_KEY, "") for r in sent(receiver, "/v2/enqueue")]
    bodies += [str(body) for _, _, body in statuspage.requests]
    bodies += [m.as_string() for m in smtp.messages]
    for text in (run.output, str(run.verdict), *bodies):
        for secret in SECRETS:
            assert secret not in text


def test_a_slow_endpoint_release_is_sev_2_and_does_not_page(local_env, receiver, statuspage, smtp):
    local_env.platform.deploy("3.0.0", ["slow_endpoint"])
    run = local_env.run(
        "-m", "gating", suites=SLOW, env=channel_env(receiver, statuspage, smtp)
    )  # fmt: skip
    assert run.target()["gate"] == "failed", run.output[-3000:]
    severity = run.target()["severity"]
    assert (severity["level"], severity["pages"]) == (2, False), severity
    assert sent(receiver, "/v2/enqueue") == []
    assert statuspage.requests == []
    slack = sent(receiver, "/services/")
    assert len(slack) == 1
    assert "[Sev 2 ERROR]" in slack[0].body["text"]


def test_failed_deliveries_are_recorded_and_harmless(local_env, receiver, statuspage, smtp):
    """Teams answers 500, Statuspage 500, the SMTP server refuses the password: the run still
    rolls back, writes its verdict, exits with the gate's status, and prints no secret."""
    with Receiver() as teams:
        for _ in range(20):
            teams.answer(500, "Internal Server Error")
        env = {
            **channel_env(receiver, statuspage, smtp),
            "INCIDENT_TEAMS": f"{teams.url}/{TEAMS_SECRET}",
            "INCIDENT_SMTP_PASSWORD": "wrong-" + SMTP_PASSWORD,
        }
        statuspage.fail_with = 500
        local_env.platform.deploy("4.0.0", ["health_down"])
        run = local_env.run("-m", "gating", "--rollback", "auto", suites=HEALTH, env=env)
    assert run.returncode == 1  # the gate failed: that, and only that, decides the exit status
    assert run.target()["rollback"]["status"] == "succeeded"
    deliveries = run.target()["notifications"]
    failed = {n["channel"] for n in deliveries if not n["ok"]}
    assert failed == {"teams", "email", "statuspage"}
    assert {n["channel"] for n in deliveries if n["ok"]} == {"slack", "pagerduty"}
    messages = {n["channel"]: n["message"] for n in deliveries if not n["ok"]}
    assert "answered 500" in messages["teams"]
    assert "refused the credentials (535)" in messages["email"]
    assert "answered 500" in messages["statuspage"]
    assert smtp.messages == []
    for text in (run.output, str(run.verdict)):
        for secret in (*SECRETS, "wrong-" + SMTP_PASSWORD):
            assert secret not in text
