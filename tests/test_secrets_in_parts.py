"""Secrets in parts: distinct secrets planted in every ``*_env`` place the local target has -
whole URLs with userinfo, tokens in query strings and in paths, a routing key, API keys,
SMTP credentials, monitoring tokens - then two failing gates rolled back, one while every
notification channel fails (nothing listens) and one while every channel succeeds, and the
HTML report built. None of the secrets, nor any part of one, is in any output or any file.
"""

from __future__ import annotations

from pathlib import Path

from postdeploy.sysutil import free_port
from tests.standins.receiver import Receiver
from tests.standins.smtp import SmtpServer
from tests.standins.statuspage import StatuspageStandin

CHECKS = (
    "suites/functional/test_authentication.py",
    "suites/monitoring/test_health.py",
    "suites/monitoring/test_error_tracking.py",
    "suites/monitoring/test_logs.py",
)
PAGE_ID = "pg0123456789"
#: Each secret, and the parts of one that a careless message could print on their own.
SLACK_USERINFO = "slackuser:Sl4ckUserinfoPass"
SLACK_PATH_TOKEN = "Sl4ckPathTokenA1b2C3"
HOOK_USERINFO = "hookuser:H00kUserinfoTok3n"
HOOK_QUERY_TOKEN = "H00kQueryTok3n7788"
TEAMS_PATH_TOKEN = "Te4msPathToken0192"
TEAMS_SIGNATURE = "Te4msSigValue8812"
ROUTING_KEY = "R0utingKeySecret0123456789"
STATUSPAGE_KEY = "St4tuspageApiKey9921"
SMTP_USER = "smtpuser-S3cretName"
SMTP_PASSWORD = "SmtpPassw0rdSecret"
PROMETHEUS_TOKEN = "Pr0metheusTokenSecret"
LOKI_TOKEN = "L0kiTokenSecret5566"
SENTRY_TOKEN = "S3ntryTokenSecret4321"
TRIGGER_TOKEN = "Tr1ggerTokenSecret8765"
PARTS = (
    SLACK_USERINFO, "Sl4ckUserinfoPass", SLACK_PATH_TOKEN, HOOK_USERINFO, "H00kUserinfoTok3n",
    HOOK_QUERY_TOKEN, TEAMS_PATH_TOKEN, TEAMS_SIGNATURE, ROUTING_KEY, STATUSPAGE_KEY, SMTP_USER,
    SMTP_PASSWORD, PROMETHEUS_TOKEN, LOKI_TOKEN, SENTRY_TOKEN, TRIGGER_TOKEN,
)  # fmt: skip


def planted(base: str, statuspage_url: str, smtp_port: int, smtp_ca: str) -> dict[str, str]:
    """Every secret of the local target in its ``*_env`` variable; channels at ``base``."""
    host = base.removeprefix("http://")
    notify, monitoring = "POSTDEPLOY_LOCAL_NOTIFY_", "POSTDEPLOY_LOCAL_MONITORING_"
    return {
        f"{notify}SLACK_WEBHOOK_ENV": "PARTS_SLACK",
        "PARTS_SLACK": f"http://{SLACK_USERINFO}@{host}/services/T0/B0/{SLACK_PATH_TOKEN}",
        f"{notify}WEBHOOK_URL_ENV": "PARTS_HOOK",
        "PARTS_HOOK": f"http://{HOOK_USERINFO}@{host}/hook?token={HOOK_QUERY_TOKEN}",
        f"{notify}TEAMS_WEBHOOK_ENV": "PARTS_TEAMS",
        "PARTS_TEAMS": f"{base}/workflows/{TEAMS_PATH_TOKEN}/invoke?sig={TEAMS_SIGNATURE}",
        f"{notify}PAGERDUTY_ROUTING_KEY_ENV": "PARTS_PD",
        "PARTS_PD": ROUTING_KEY,
        f"{notify}PAGERDUTY_URL": f"{base}/v2/enqueue",
        f"{notify}STATUSPAGE_API_KEY_ENV": "PARTS_STATUSPAGE",
        "PARTS_STATUSPAGE": STATUSPAGE_KEY,
        f"{notify}STATUSPAGE_URL": statuspage_url,
        f"{notify}STATUSPAGE_PAGE_ID": PAGE_ID,
        f"{notify}SMTP_HOST": "127.0.0.1",
        f"{notify}SMTP_PORT": str(smtp_port),
        f"{notify}SMTP_CA_FILE": smtp_ca,
        f"{notify}SMTP_USERNAME_ENV": "PARTS_SMTP_USER",
        "PARTS_SMTP_USER": SMTP_USER,
        f"{notify}SMTP_PASSWORD_ENV": "PARTS_SMTP_PASSWORD",
        "PARTS_SMTP_PASSWORD": SMTP_PASSWORD,
        f"{notify}EMAIL_FROM": "postdeploy@example.com",
        f"{notify}EMAIL_TO": "oncall@example.com",
        f"{monitoring}PROMETHEUS_TOKEN_ENV": "PARTS_PROMETHEUS",
        "PARTS_PROMETHEUS": PROMETHEUS_TOKEN,
        f"{monitoring}LOKI_URL": f"http://127.0.0.1:{free_port()}",
        f"{monitoring}LOKI_TOKEN_ENV": "PARTS_LOKI",
        "PARTS_LOKI": LOKI_TOKEN,
        f"{monitoring}SENTRY_TOKEN_ENV": "PARTS_SENTRY",
        "PARTS_SENTRY": SENTRY_TOKEN,
        f"{monitoring}ERROR_TRIGGER_TOKEN_ENV": "PARTS_TRIGGER",
        "PARTS_TRIGGER": TRIGGER_TOKEN,
    }


def leaks(text: str) -> list[str]:
    return [part for part in PARTS if part in text]


def files_leaking(*folders: Path) -> dict[str, list[str]]:
    found = {}
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                text = path.read_bytes().decode("utf-8", errors="replace")
                if leaks(text):
                    found[str(path)] = leaks(text)
    return found


def test_no_secret_or_part_of_one_reaches_any_output_or_file(local_env, tmp_path):
    platform = local_env.platform
    platform.stop()
    platform.deploy("1.0.0")
    closed = f"http://127.0.0.1:{free_port()}"
    failing = planted(closed, closed, free_port(), "")
    outputs = [local_env.run("-m", "gating", "--rollback", "auto", suites=CHECKS[:2]).output]

    platform.deploy("2.0.0", ["login_broken"])
    first = local_env.run("--rollback", "auto", suites=CHECKS, env=failing)
    outputs.append(first.output)
    with (
        Receiver() as receiver,
        StatuspageStandin(PAGE_ID, STATUSPAGE_KEY) as statuspage,
        SmtpServer(tmp_path, SMTP_USER, SMTP_PASSWORD) as smtp,
    ):
        platform.deploy("3.0.0", ["login_broken"])
        working = planted(receiver.url, statuspage.url, smtp.port, str(smtp.ca_file))
        second = local_env.run("--rollback", "auto", suites=CHECKS, env=working)
        outputs.append(second.output)
    report = local_env.cli("report", "--reports-dir", str(local_env.reports_root / "run-3"))
    outputs += [report.stdout, report.stderr]

    for run in (first, second):
        assert run.target()["gate"] == "failed", run.output[-3000:]
        assert run.target()["rollback"]["status"] in ("succeeded", "failed"), run.target()
    deliveries = {n["channel"]: n["ok"] for n in first.target()["notifications"]}
    assert deliveries, first.target()
    assert not any(deliveries.values()), deliveries  # every channel failed
    delivered = {n["channel"] for n in second.target()["notifications"] if n["ok"]}
    assert {"slack", "webhook", "teams", "pagerduty", "email"} <= delivered, second.target()
    assert receiver.received, "nothing was delivered"
    assert [text for text in outputs if leaks(text)] == []
    assert files_leaking(local_env.reports_root, local_env.state_dir) == {}
