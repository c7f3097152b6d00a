"""Prometheus as the suites see it, against any target: its HTTP API and the exposition format.

* :class:`PrometheusAPI` asks a Prometheus server about targets, alerting rules, alerts and
  queries through its documented HTTP API (``/api/v1/...``), every call with a bounded
  timeout. When Prometheus itself goes wrong - unreachable, a timeout, a refused token, an
  HTTP or query error, an answer that is not the API's - it raises :class:`PrometheusError`
  naming the server and the query: a :class:`~postdeploy.gate.BackendError`, so the check is
  *broken* and the gate inconclusive - a monitoring outage never rolls a release back. What
  Prometheus answers *about the target* - no such series, counters that do not move - is
  :class:`MetricsGap`, an assertion failure: the check fails.
* :func:`parse_exposition` reads ``/metrics`` with prometheus_client's parser.

The real Prometheus the local platform runs for a local target lives in
:mod:`postdeploy.local.prometheus`; it uses this client, never the reverse.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from postdeploy.gate import (
    MISCONFIGURED,
    TIMEOUT,
    UNPARSEABLE,
    BackendError,
    http_failure,
    transport_failure,
)

#: The system named when Prometheus fails (the verdict's ``backend``).
SYSTEM = "Prometheus"
READY_PROBE_TIMEOUT_S = 0.5
#: How often a wait asks Prometheus again.
SCRAPE_POLL_S = 0.25
#: New samples must be queryable within this many scrape intervals (plus a margin).
VISIBLE_WITHIN_SCRAPES = 3
VISIBILITY_MARGIN_S = 1.0
#: Units of Prometheus durations, longest match first ("ms" before "m").
DURATION_UNITS = {"ms": 0.001, "y": 31536000.0, "w": 604800.0, "d": 86400.0, "h": 3600.0,
                  "m": 60.0, "s": 1.0}  # fmt: skip
#: Characters of an error body quoted in a failure.
QUOTE_CHARS = 300


class PrometheusError(BackendError):
    """Prometheus itself failed (``how``: unreachable, timeout, refused, server error,
    unparseable); the message names the server and the query. The check is broken."""

    def __init__(self, message: str, how: str) -> None:
        super().__init__(message, system=SYSTEM, how=how)


class MetricsGap(AssertionError):
    """Prometheus answered, and its answer shows the target is not observed as required
    (no such series, no rule loaded, counters that do not move): the check fails."""


# -- the HTTP API ---------------------------------------------------------------------------


class PrometheusAPI:
    """A client of one Prometheus server's HTTP API."""

    def __init__(self, url: str, timeout_s: float, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.url, timeout=httpx.Timeout(timeout_s), headers=headers
        )

    def close(self) -> None:
        self._client.close()

    def describe(self, path: str, params: Mapping[str, str] | None = None) -> str:
        query = f" (query {params['query']!r})" if params and "query" in params else ""
        return f"Prometheus at {self.url}: GET {path}{query}"

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """The ``data`` of a successful API answer; PrometheusError otherwise."""
        where = self.describe(path, params)
        try:
            response = self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise PrometheusError(
                f"{where} did not answer within {self._client.timeout.read} s "
                "(monitoring.query_timeout_s)",
                TIMEOUT,
            ) from None
        except httpx.TransportError as exc:
            raise PrometheusError(
                f"{where}: Prometheus is unreachable ({type(exc).__name__}: {exc}); check "
                "monitoring.prometheus_url and that the server is up",
                transport_failure(exc),
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            detail = body.get("error") if isinstance(body, dict) else response.text
            hint = (
                " (is the token in monitoring.prometheus_token_env valid?)"
                if response.status_code in (401, 403)
                else ""
            )
            raise PrometheusError(
                f"{where} answered HTTP {response.status_code}: {str(detail)[:QUOTE_CHARS]}{hint}",
                http_failure(response.status_code),
            )
        if not isinstance(body, dict) or body.get("status") != "success":
            raise PrometheusError(
                f"{where} did not answer the API's JSON: {response.text[:QUOTE_CHARS]!r}",
                UNPARSEABLE,
            )
        return body.get("data")

    def ready(self) -> bool:
        try:
            return self._client.get("/-/ready", timeout=READY_PROBE_TIMEOUT_S).status_code == 200
        except httpx.HTTPError:
            return False

    def field(self, path: str, params: Mapping[str, str] | None, key: str) -> list[Any]:
        """The list under ``data[key]`` of an answer; PrometheusError if it is not there."""
        data = self.get(path, params)
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, list):
            raise PrometheusError(
                f"{self.describe(path, params)} answered without a list of {key}: "
                f"{str(data)[:QUOTE_CHARS]}",
                UNPARSEABLE,
            )
        return value

    def targets(self) -> list[dict[str, Any]]:
        return list(self.field("/api/v1/targets", {"state": "active"}, "activeTargets"))

    def job_targets(self, job: str) -> list[dict[str, Any]]:
        return [t for t in self.targets() if t.get("labels", {}).get("job") == job]

    def alerting_rules(self) -> list[dict[str, Any]]:
        groups = self.field("/api/v1/rules", {"type": "alert"}, "groups")
        return [rule for group in groups for rule in group.get("rules", [])]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.field("/api/v1/alerts", None, "alerts"))

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` (possibly empty)."""
        data = self.get("/api/v1/query", {"query": expr})
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise PrometheusError(
                f"{self.describe('/api/v1/query', {'query': expr})} returned a "
                f"{kind}, expected an instant vector",
                UNPARSEABLE,
            )
        return list(data.get("result") or [])

    def value(self, expr: str) -> float:
        """The single value of ``expr``; an empty result is a failure of its own ("no data")."""
        result = self.query(expr)
        if not result:
            raise MetricsGap(
                f"{self.describe('/api/v1/query', {'query': expr})} returned an empty result: "
                "no data - the series does not exist in Prometheus (is the target scraped, "
                "does the app expose the metric?)"
            )
        return sum(float(sample["value"][1]) for sample in result)


@dataclass(frozen=True)
class Scrape:
    """A scrape job's active targets, once each of them was scraped at least once."""

    targets: list[dict[str, Any]]
    #: when Prometheus first reported them scraped (its lastScrape then), UTC
    first_seen: dt.datetime

    @property
    def interval_s(self) -> float:
        """The job's scrape interval (the longest of its targets')."""
        return max(parse_duration(str(t.get("scrapeInterval", "0s"))) for t in self.targets)

    def visibility_s(self) -> float:
        """How long new samples may take to be queryable: a few scrape intervals."""
        return VISIBLE_WITHIN_SCRAPES * self.interval_s + VISIBILITY_MARGIN_S


def wait_for_scrape(api: PrometheusAPI, job: str, timeout_s: float) -> Scrape:
    """The job's targets once each was scraped; a failure if the job has none or none ran."""
    where = api.describe("/api/v1/targets", {"state": "active"})
    deadline = time.monotonic() + timeout_s
    while True:
        targets = api.job_targets(job)
        scraped = [parse_time(str(t.get("lastScrape", ""))) for t in targets]
        if targets and all(scraped) and all(t.get("health") != "unknown" for t in targets):
            return Scrape(targets, max(s for s in scraped if s is not None))
        if time.monotonic() >= deadline:
            break
        time.sleep(SCRAPE_POLL_S)
    if not targets:
        jobs = sorted({t.get("labels", {}).get("job", "?") for t in api.targets()})
        raise PrometheusError(
            f"{where}: no data - no active target in job {job!r} after {timeout_s:g} s, so "
            f"nothing scrapes the app (monitoring.scrape_job); jobs: {', '.join(jobs) or 'none'}",
            MISCONFIGURED,
        )
    raise PrometheusError(
        f"{where}: job {job!r} was not scraped within {timeout_s:g} s "
        "(monitoring.prometheus_wait_s)",
        TIMEOUT,
    )


def wait_for_increase(
    api: PrometheusAPI, expr: str, baseline: float, increase: float, timeout_s: float
) -> float:
    """The value of ``expr`` once it reached ``baseline + increase``; a failure otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = api.value(expr)
        if value >= baseline + increase:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(SCRAPE_POLL_S)
    raise MetricsGap(
        f"{api.describe('/api/v1/query', {'query': expr})}: the value stayed at {value:g} "
        f"for {timeout_s:g} s after {increase:g} synthetic requests (it was {baseline:g} "
        "before them): the requests never showed up in Prometheus - are the app's counters "
        "moving, is the target scraped?"
    )


def parse_duration(value: str) -> float:
    """A Prometheus duration (``1s``, ``1m30s``, ``500ms``) in seconds."""
    total, number = 0.0, ""
    rest = value.strip()
    while rest:
        if rest[0].isdigit() or rest[0] == ".":
            number, rest = number + rest[0], rest[1:]
            continue
        unit = next((u for u in DURATION_UNITS if rest.startswith(u)), None)
        if unit is None or not number:
            raise ValueError(f"not a Prometheus duration: {value!r}")
        total += float(number) * DURATION_UNITS[unit]
        number, rest = "", rest[len(unit) :]
    if number:
        raise ValueError(f"not a Prometheus duration (no unit): {value!r}")
    return total


def parse_time(value: str) -> dt.datetime | None:
    """An RFC 3339 time as Prometheus writes it (nanoseconds allowed); None if unset."""
    if not value or value.startswith("0001-"):
        return None
    head, dot, rest = value.replace("Z", "+00:00").partition(".")
    if dot:
        zone = rest.lstrip("0123456789")
        digits = rest[: len(rest) - len(zone)]
        head = f"{head}.{digits[:6]}{zone}"
    moment = dt.datetime.fromisoformat(head)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# -- the exposition format ------------------------------------------------------------------


def parse_exposition(text: str, source: str) -> dict[str, Any]:
    """Metric families by name; a body that is not Prometheus exposition is a failure."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return {family.name: family for family in text_string_to_metric_families(text)}
    except (ValueError, TypeError, IndexError) as exc:
        raise AssertionError(
            f"{source} is not valid Prometheus exposition: {type(exc).__name__}: {exc}"
        ) from None


def family_present(families: Mapping[str, Any], name: str) -> bool:
    """``name`` as written in /metrics (``x_total``) or as the parser names the family (``x``)."""
    return name in families or name.removesuffix("_total") in families


def sample_sum(families: Mapping[str, Any], sample: str, **labels: str) -> float | None:
    """Sum of the samples named ``sample`` carrying ``labels``; None when there is none."""
    values = [
        s.value
        for family in families.values()
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else None
