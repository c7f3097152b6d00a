"""Harness-side is broken: every monitoring back end's client turns each kind of failure
(unreachable, timeout, 401, 403, 5xx, an answer that is not its API's) into a BackendError that
names the system and how it failed - never an AssertionError, never a bare transport error - so
the gate classifies the check *broken*, not failed. The browser, Locust and the local platform's
set-up errors are BackendErrors too."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from postdeploy import gate
from postdeploy.gate import BackendError, Outcome, classify
from postdeploy.local.sentry_standin import ORG, PROJECT
from postdeploy.monitoring.error_tracking import SentryAPI, SentryProject
from postdeploy.monitoring.logs import LogSourceError, LokiLogs
from postdeploy.monitoring.prometheus import PrometheusAPI
from postdeploy.sysutil import free_port

#: Client timeout of these tests, and how long the "slow" back end takes (well beyond it).
TIMEOUT_S = 0.3
SLOW_S = 1.5
SECRET = "backend-secret-token-7d1c"


def prometheus(url: str) -> None:
    PrometheusAPI(url, TIMEOUT_S, token=SECRET).targets()


def sentry(url: str) -> None:
    project = SentryProject(url, ORG, PROJECT, SECRET, "$SENTRY_AUTH_TOKEN")
    SentryAPI(project, TIMEOUT_S).find_tagged("k", "v", 60)


def alertmanager(url: str) -> None:
    from postdeploy.monitoring.alertmanager import AlertmanagerAPI

    AlertmanagerAPI(url, TIMEOUT_S).active_alerts()


def loki(url: str) -> None:
    LokiLogs(url, '{app="la"}', TIMEOUT_S, token=SECRET).lines("needle", time.time())


#: back end -> (how the client is asked, the system its errors name)
BACKENDS: dict[str, tuple[Callable[[str], None], str]] = {
    "prometheus": (prometheus, "Prometheus"),
    "sentry": (sentry, "Sentry API"),
    "loki": (loki, "Loki"),
    "alertmanager": (alertmanager, "Alertmanager"),
}


def slow(handler: Any) -> tuple[int, Any, dict[str, str]]:
    time.sleep(SLOW_S)
    return 200, {}, {}


#: kind of error -> (the stand-in's answer; None: nothing listens), expected ``how``
KINDS: dict[str, tuple[Callable[[Any], tuple[int, Any, dict[str, str]]] | None, str]] = {
    "unreachable": (None, gate.UNREACHABLE),
    "timeout": (slow, gate.TIMEOUT),
    "401": (lambda h: (401, {"error": "unauthorized"}, {}), gate.REFUSED),
    "403": (lambda h: (403, {"error": "forbidden"}, {}), gate.REFUSED),
    "5xx": (lambda h: (503, b"upstream down", {"Content-Type": "text/plain"}), gate.SERVER_ERROR),
    "unparseable": (
        lambda h: (200, b"<html>a login page</html>", {"Content-Type": "text/html"}),
        gate.UNPARSEABLE,
    ),
}


def classified(exc: BaseException) -> Outcome:
    try:
        raise exc
    except BaseException:
        return classify(pytest.ExceptionInfo.from_current())


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_back_end_error_is_broken_naming_the_system_and_how(api_server, backend, kind):
    ask, system = BACKENDS[backend]
    route, how = KINDS[kind]
    url = f"http://127.0.0.1:{free_port()}" if route is None else api_server(route).url
    started = time.monotonic()

    with pytest.raises(BackendError) as caught:
        ask(url)

    error = caught.value
    assert not isinstance(error, AssertionError)
    assert (error.system, error.how) == (system, how), str(error)
    assert error.label() == f"{system}: {how}"
    assert url.removeprefix("http://") in str(error)  # names where it asked
    assert SECRET not in str(error)
    assert classified(error) is Outcome.BROKEN
    assert time.monotonic() - started < SLOW_S  # bounded by the client's timeout


def test_a_driver_that_cannot_read_logs_names_the_platform():
    error = LogSourceError("reading the logs failed: 403", "render", gate.REFUSED)

    assert error.label() == "render logs API: refused the credentials"
    assert classified(error) is Outcome.BROKEN


def test_the_browser_locust_and_platform_set_up_errors_are_broken():
    from postdeploy.browser import BrowserUnavailable
    from postdeploy.fixtures import PlatformSetupError
    from postdeploy.performance.load import LoadError

    for error, system in (
        (BrowserUnavailable("no browser"), "browser"),
        (LoadError("Locust wrote no stats"), "Locust"),
        (PlatformSetupError("could not deploy", "local"), "local platform"),
    ):
        assert isinstance(error, BackendError)
        assert not isinstance(error, AssertionError)
        assert error.system == system
        assert classified(error) is Outcome.BROKEN


def test_what_the_target_answered_still_fails():
    import httpx

    assert classified(AssertionError("503 from /api/health")) is Outcome.FAILED
    assert classified(gate.TargetUnreachable("no answer")) is Outcome.FAILED
    assert classified(httpx.ConnectError("refused")) is Outcome.FAILED
