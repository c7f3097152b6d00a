"""No false rollback: with ``--rollback auto`` against the real local platform, a harness-side
failure - Prometheus down, Prometheus answering 500, Sentry's API refusing the token, Loki
timing out, no browser - leaves the gate inconclusive and rolls nothing back; the verdict and
the notification say which system failed and how. The failures share one run where they can.
"""

from __future__ import annotations

import json
import time

from postdeploy.sysutil import free_port
from tests.standins.receiver import Receiver

from .test_suite_local import ERRORS, HEALTH, LOGGED, LOGS, PROMETHEUS, SCRAPED, SENTRY

JOURNEY = "suites/journeys/test_journeys.py::test_a_new_learner_completes_the_whole_journey"
#: Loki answers after this long; the run's query timeout is far shorter.
LOKI_DELAY_S = 3.0
QUERY_TIMEOUT_S = "1"
WRONG_TOKEN = "not-the-standin-token-91e2"


def broken_by(run) -> dict[str, str]:
    """check name -> the back end the verdict names for it."""
    return {
        f["test"].rsplit("::", 1)[-1].split("[")[0]: f.get("backend", "")
        for f in run.target()["failures"]
        if f["kind"] == "broken"
    }


def assert_not_rolled_back(local_env, run, serving: str) -> None:
    target = run.target()
    assert target["gate"] == "inconclusive", (target["gate"], target["failures"])
    assert (target.get("rollback") or {}).get("status") in (None, "not-needed"), target
    assert not [f for f in target["failures"] if f["kind"] == "failed"], target["failures"]
    assert local_env.platform.current().version == serving


def test_monitoring_back_ends_and_the_browser_failing_never_roll_back(
    local_env, api_server, tmp_path
):
    local_env.platform.deploy("1.0.0")
    local_env.platform.deploy("2.0.0")  # a release to go back to, were the gate to fail
    loki = api_server(lambda handler: (time.sleep(LOKI_DELAY_S), (200, {}, {}))[1])
    with Receiver() as receiver:
        env = {
            "POSTDEPLOY_LOCAL_MONITORING_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
            "SENTRY_STANDIN_TOKEN": WRONG_TOKEN,
            "POSTDEPLOY_LOCAL_MONITORING_LOKI_URL": loki.url,
            "POSTDEPLOY_LOCAL_MONITORING_QUERY_TIMEOUT_S": QUERY_TIMEOUT_S,
            "POSTDEPLOY_CHROMIUM": str(tmp_path / "no-chromium"),
            "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "no-playwright-browsers"),
            "POSTDEPLOY_LOCAL_NOTIFY_SLACK_WEBHOOK_ENV": "SELFTEST_SLACK_WEBHOOK",
            "SELFTEST_SLACK_WEBHOOK": f"{receiver.url}/services/T0/B0/harness",
        }
        run = local_env.run(
            "--rollback", "auto", suites=(PROMETHEUS, ERRORS, LOGS, HEALTH, JOURNEY),
            env=env,
        )  # fmt: skip

    assert_not_rolled_back(local_env, run, "2.0.0")
    backends = broken_by(run)
    assert backends[SCRAPED] == "Prometheus: unreachable", run.output[-3000:]
    assert backends[SENTRY] == "Sentry API: refused the credentials"
    assert backends[LOGGED] == "Loki: timeout"
    assert backends["test_a_new_learner_completes_the_whole_journey"].startswith("browser: ")
    assert "Prometheus: unreachable" in run.target()["reason"]
    assert WRONG_TOKEN not in run.output + json.dumps(run.verdict)
    slack = json.dumps([r.body for r in receiver.received if r.path.startswith("/services/")])
    for line in ("Prometheus: unreachable", "Sentry API: refused the credentials", "Loki: timeout"):
        assert f"Not judged - {line}" in slack, slack[:2000]


def test_a_prometheus_answering_500_never_rolls_back(local_env, api_server):
    local_env.platform.deploy("1.0.0")
    local_env.platform.deploy("2.0.0")
    failing = api_server(lambda handler: (500, {"status": "error", "error": "tsdb down"}, {}))
    env = {"POSTDEPLOY_LOCAL_MONITORING_PROMETHEUS_URL": failing.url}

    run = local_env.run("--rollback", "auto", suites=(PROMETHEUS, HEALTH), env=env)

    assert_not_rolled_back(local_env, run, "2.0.0")
    assert broken_by(run)[SCRAPED] == "Prometheus: server error"
    assert "answered HTTP 500: tsdb down" in run.output
