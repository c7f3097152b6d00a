"""Fixtures of the monitoring suite: the target's monitoring systems, and synthetic traffic.

Every check sends its own synthetic traffic first (requests carrying a unique X-Request-ID)
and then looks for it, so "no data" is always a failure with its own message, never a pass.

* ``prometheus``: the target's Prometheus (``monitoring.prometheus_url``), or the one its
  platform runs for the run (the local platform: a real Prometheus started once per run, also
  under xdist, and stopped after), as the platform's driver reports it.
* ``sentry``: the target's Sentry web API, or the one its platform runs (the local platform:
  the local Sentry stand-in).
* ``log_source``: Grafana Loki when configured, else the platform driver's logs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from postdeploy.contract import (
    METRIC_LATENCY,
    METRIC_REQUESTS,
    METRIC_ROUTE_LABEL,
    METRIC_SYNTHETIC_LABEL,
    METRIC_SYNTHETIC_VALUE,
    PATHS,
    REQUEST_ID_HEADER,
    SYNTHETIC_HEADER,
)
from postdeploy.http import new_client

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import httpx

    from postdeploy.config import Section, Target
    from postdeploy.early import EarlyStarts
    from postdeploy.monitoring.error_tracking import SentryAPI
    from postdeploy.monitoring.logs import LogSource
    from postdeploy.monitoring.prometheus import PrometheusAPI, Scrape

#: Route the synthetic traffic goes to (and that the metric queries select).
SYNTHETIC_PATH = PATHS.health
#: The labels that select the harness's own synthetic requests, and nobody else's: the
#: route, and the app's synthetic label (platform health checkers hit the same route).
SYNTHETIC_SERIES = {
    METRIC_ROUTE_LABEL: SYNTHETIC_PATH,
    METRIC_SYNTHETIC_LABEL: METRIC_SYNTHETIC_VALUE,
}


def names(value: list[str] | str) -> list[str]:
    """A list setting, written as a TOML list or a comma-separated string."""
    items = value if isinstance(value, list) else value.split(",")
    return [item.strip() for item in items if item.strip()]


@pytest.fixture(scope="session")
def monitoring(target: Target) -> Section:
    """The target's ``[targets.NAME.monitoring]`` settings."""
    return target.monitoring


@pytest.fixture(scope="session")
def required_metric_families(monitoring: Section) -> list[str]:
    return names(monitoring.metric_families)


@pytest.fixture(scope="session")
def required_alert_rules(monitoring: Section) -> list[str]:
    return names(monitoring.required_alert_rules)


# -- synthetic traffic ----------------------------------------------------------------------


SendSynthetic = Callable[..., list[str]]


@pytest.fixture(scope="session")
def send_synthetic(run_id: str) -> SendSynthetic:
    """``send(client, count, label, headers=None)``: ``count`` GETs of SYNTHETIC_PATH with
    unique request ids, marked synthetic (:data:`SYNTHETIC_HEADER`) so the app's metrics count
    them apart (and ``headers``, e.g. the ones that address one instance).

    Any answer counts (the checks look for the requests, not for their status).
    """

    def send(
        client: httpx.Client, count: int, label: str, headers: dict[str, str] | None = None
    ) -> list[str]:
        sent = []
        for _ in range(count):
            request_id = f"pd-{run_id}-{label}-{secrets.token_hex(4)}"
            marked = {REQUEST_ID_HEADER: request_id, SYNTHETIC_HEADER: run_id}
            client.get(SYNTHETIC_PATH, headers={**(headers or {}), **marked})
            sent.append(request_id)
        return sent

    return send


# -- Prometheus -----------------------------------------------------------------------------


@dataclass
class Prometheus:
    """The Prometheus the checks ask, and whether this run started it."""

    api: PrometheusAPI
    job: str
    started_here: bool
    interval_s: float

    def selector(self, **labels: str) -> str:
        pairs = {"job": self.job, **labels}
        return ",".join(f'{key}="{value}"' for key, value in pairs.items())


@dataclass
class _Opened:
    """A Prometheus session, the context that started it (if any), and its first scrape (or
    the error waiting for it raised), when it was awaited early."""

    prometheus: Prometheus | None
    context: AbstractContextManager[str] | None = None
    scrape: Scrape | BaseException | None = None

    def close(self) -> None:
        if self.prometheus is not None:
            self.prometheus.api.close()
        if self.context is not None:
            self.context.__exit__(None, None, None)


def _open_prometheus(target: Target, run_id: str) -> _Opened:
    """The target's Prometheus; without one, the one its platform runs for this run (started
    here); ``prometheus`` None when there is neither."""
    from postdeploy.monitoring.prometheus import PrometheusAPI
    from postdeploy.rollback import lifecycle_of

    settings = target.monitoring
    token_env = settings.prometheus_token_env
    token = os.environ.get(token_env) if token_env else None

    def session(url: str, started_here: bool) -> Prometheus:
        api = PrometheusAPI(url, settings.query_timeout_s, token)
        return Prometheus(api, settings.scrape_job, started_here, settings.scrape_interval_s)

    if settings.prometheus_url:
        return _Opened(session(settings.prometheus_url, started_here=False))
    services = lifecycle_of(target).services()
    context = services.prometheus(run_id) if services else None
    if context is None:
        return _Opened(None)
    url = context.__enter__()
    return _Opened(session(url, started_here=True), context)


def _scrape(prometheus: Prometheus, monitoring: Section) -> Scrape:
    from postdeploy.monitoring.prometheus import wait_for_scrape

    return wait_for_scrape(prometheus.api, prometheus.job, monitoring.prometheus_wait_s)


def _open_and_scrape(target: Target, run_id: str) -> _Opened:
    """Early: start (or reach) Prometheus and wait for its first scrape of the target."""
    opened = _open_prometheus(target, run_id)
    if opened.prometheus is not None:
        try:
            opened.scrape = _scrape(opened.prometheus, target.monitoring)
        except Exception as exc:  # raised again to the checks that need the scrape
            opened.scrape = exc
    return opened


def pytest_postdeploy_start_early(
    session: pytest.Session, target: Target, starts: EarlyStarts
) -> None:
    """Prometheus (started, first scrape awaited) in the background, if a check needs it.
    Quiet: it sends the target nothing but the scrapes it goes on making all run, so the
    checks that run alone do not wait out its start-up."""
    from postdeploy.early import needed
    from postdeploy.settings import settings_of

    if needed(session, "prometheus"):
        run_id = settings_of(session.config).run_id
        starts.start(
            f"prometheus:{target.name}",
            lambda: _open_and_scrape(target, run_id),
            discard=_Opened.close,
            quiet=True,
        )


@pytest.fixture(scope="session")
def _prometheus_opened(
    pytestconfig: pytest.Config, target: Target, run_id: str
) -> Iterator[_Opened]:
    from postdeploy.early import early_starts

    opened = early_starts(pytestconfig).take(
        f"prometheus:{target.name}", lambda: _open_prometheus(target, run_id)
    )
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def prometheus(target: Target, _prometheus_opened: _Opened) -> Prometheus:
    """The target's Prometheus; without one, the one its platform runs for this run, if any."""
    if _prometheus_opened.prometheus is None:
        pytest.skip(
            f"target {target.name!r} configures no Prometheus: set monitoring.prometheus_url "
            "to check scraping and alert rules"
        )
    return _prometheus_opened.prometheus


@pytest.fixture(scope="session")
def prometheus_scrape(
    prometheus: Prometheus, monitoring: Section, _prometheus_opened: _Opened
) -> Scrape:
    """The scrape job's targets once Prometheus scraped each of them."""
    early = _prometheus_opened.scrape
    if isinstance(early, BaseException):
        raise early
    return early if early is not None else _scrape(prometheus, monitoring)


@dataclass(frozen=True)
class Traffic:
    """Synthetic requests sent after the first scrape, and what Prometheus had before them."""

    queries: dict[str, str]
    baselines: dict[str, float]
    count: int


@pytest.fixture(scope="session")
def prometheus_traffic(
    target: Target,
    prometheus: Prometheus,
    prometheus_scrape: Scrape,
    monitoring: Section,
    send_synthetic: SendSynthetic,
) -> Traffic:
    # Only the harness's own requests; none yet is a baseline of 0 (``or vector(0)``), and
    # an increase that never comes fails the check: the harness's traffic was not found.
    route = prometheus.selector(**SYNTHETIC_SERIES)
    queries = {
        "requests": f"sum({METRIC_REQUESTS}{{{route}}}) or vector(0)",
        "latency": f"sum({METRIC_LATENCY}_count{{{route}}}) or vector(0)",
        "buckets": f"count({METRIC_LATENCY}_bucket{{{route}}})",
    }
    baselines = {name: prometheus.api.value(queries[name]) for name in ("requests", "latency")}
    count = int(monitoring.synthetic_requests)
    with new_client(target) as client:
        send_synthetic(client, count, "prom")
    return Traffic(queries, baselines, count)


# -- error tracking and logs ----------------------------------------------------------------


@pytest.fixture(scope="session")
def sentry(target: Target, monitoring: Section) -> Iterator[SentryAPI]:
    """The target's Sentry web API (for a local target: the local Sentry stand-in)."""
    from postdeploy.monitoring.error_tracking import SentryAPI, sentry_project

    project = sentry_project(target)
    if project is None:
        pytest.skip(
            f"target {target.name!r} configures no Sentry: set monitoring.sentry_api_url, "
            "sentry_org and sentry_project to check error tracking"
        )
    client = SentryAPI(project, monitoring.query_timeout_s)
    yield client
    client.close()


@pytest.fixture(scope="session")
def log_source(target: Target) -> Iterator[LogSource]:
    """Where the deployment's logs are read back: Loki if configured, else the platform."""
    from postdeploy.monitoring.logs import log_source as source_for

    source = source_for(target)
    yield source
    close = getattr(source, "close", None)
    if close is not None:
        close()
