"""Prometheus: its HTTP API, the exposition format, and a real local server for the local target.

* :class:`PrometheusAPI` asks a Prometheus server about targets, alerting rules, alerts and
  queries through its documented HTTP API (``/api/v1/...``), every call with a bounded
  timeout. Anything that goes wrong - unreachable, an HTTP error, a query error, an empty
  result where data was needed - raises :class:`PrometheusError` naming the server and the
  query; it is an assertion failure, so it fails the check instead of breaking the run.
* :func:`parse_exposition` reads ``/metrics`` with prometheus_client's parser.
* :func:`shared_local_prometheus` runs the Debian package's ``prometheus`` binary with a
  generated configuration that scrapes the local target over HTTPS (trusting the local CA) and
  loads the alert rules of :func:`alert_rules`. It is started once per run and target, even
  under xdist: the processes that use it register in a folder under a lock; the last one to
  leave stops it. A small supervisor process (``python -m postdeploy.monitoring.prometheus
  --supervise``) also stops it as soon as no registered process is alive, so a killed run
  never leaves it behind.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from postdeploy.contract import METRIC_LATENCY, METRIC_REQUESTS, METRIC_ROUTE_LABEL, PATHS
from postdeploy.sysutil import LockTimeout, exclusive_lock

PROMETHEUS_BINARY = "prometheus"
DEBIAN_BINARY = "/usr/bin/prometheus"
HOST = "127.0.0.1"
RULE_GROUP = "learning-assistant"
ALERT_INSTANCE_DOWN = "LearningAssistantInstanceDown"
ALERT_ERROR_RATE = "LearningAssistantHighErrorRate"
ALERT_LATENCY = "LearningAssistantHighLatency"
WARNING_SEVERITY = "warning"
#: Window of the rate() in the error-rate and latency rules.
RATE_WINDOW = "1m"
#: Scrapes a rule must see failing before it fires (one lost scrape is not an outage).
FOR_SCRAPES = 2
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
LOCK_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05
SUPERVISE_INTERVAL_S = 0.25
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
PR_SET_PDEATHSIG = 1


class PrometheusError(AssertionError):
    """Prometheus could not confirm something; the message names the server and the query."""


class PrometheusUnavailable(Exception):
    """The harness cannot start a local Prometheus (binary missing, failed to start)."""


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
                "(monitoring.query_timeout_s)"
            ) from None
        except httpx.TransportError as exc:
            raise PrometheusError(
                f"{where}: Prometheus is unreachable ({type(exc).__name__}: {exc}); check "
                "monitoring.prometheus_url and that the server is up"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            detail = body.get("error") if isinstance(body, dict) else response.text
            raise PrometheusError(
                f"{where} answered HTTP {response.status_code}: {str(detail)[:QUOTE_CHARS]}"
            )
        if body.get("status") != "success":
            raise PrometheusError(
                f"{where} failed: {body.get('errorType', '')} {body.get('error', '')}".strip()
            )
        return body.get("data")

    def ready(self) -> bool:
        try:
            return self._client.get("/-/ready", timeout=READY_PROBE_TIMEOUT_S).status_code == 200
        except httpx.HTTPError:
            return False

    def targets(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/targets", {"state": "active"})["activeTargets"])

    def job_targets(self, job: str) -> list[dict[str, Any]]:
        return [t for t in self.targets() if t.get("labels", {}).get("job") == job]

    def alerting_rules(self) -> list[dict[str, Any]]:
        groups = self.get("/api/v1/rules", {"type": "alert"})["groups"]
        return [rule for group in groups for rule in group.get("rules", [])]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/alerts")["alerts"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` (possibly empty)."""
        data = self.get("/api/v1/query", {"query": expr})
        if data.get("resultType") != "vector":
            raise PrometheusError(
                f"{self.describe('/api/v1/query', {'query': expr})} returned a "
                f"{data.get('resultType')}, expected an instant vector"
            )
        return list(data["result"])

    def value(self, expr: str) -> float:
        """The single value of ``expr``; an empty result is a failure of its own ("no data")."""
        result = self.query(expr)
        if not result:
            raise PrometheusError(
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
            f"nothing scrapes the app (monitoring.scrape_job); jobs: {', '.join(jobs) or 'none'}"
        )
    raise PrometheusError(
        f"{where}: job {job!r} was not scraped within {timeout_s:g} s "
        "(monitoring.prometheus_wait_s)"
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
    raise PrometheusError(
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


# -- configuration of a local Prometheus ---------------------------------------------------


@dataclass(frozen=True)
class ScrapeSpec:
    """What a harness-started Prometheus scrapes, and the alert rules it evaluates."""

    url: str  # https://host:port of the deployment
    ca_file: str
    job: str
    interval_s: float
    error_ratio: float
    latency_s: float
    severity_label: str
    critical: str
    #: the alert rules are left out (platform fault alert_rules_missing)
    without_rules: bool = False


def _duration(seconds: float) -> str:
    return f"{max(round(seconds * 1000), 1)}ms"


def alert_rules(spec: ScrapeSpec) -> dict[str, Any]:
    """The rules file: instance down, high error rate, high latency (for ``spec.job``)."""
    job = f'job="{spec.job}"'
    requests = f"{METRIC_REQUESTS}{{{job}}}"
    # The test-only error route raises on purpose; its 500s are not an error rate.
    errors = (
        f'{METRIC_REQUESTS}{{{job},status=~"5..",{METRIC_ROUTE_LABEL}!="{PATHS.error_trigger}"}}'
    )
    buckets = f"{METRIC_LATENCY}_bucket{{{job}}}"
    hold = _duration(spec.interval_s * FOR_SCRAPES)
    severity = spec.severity_label
    return {
        "groups": [
            {
                "name": RULE_GROUP,
                "interval": _duration(spec.interval_s),
                "rules": [
                    {
                        "alert": ALERT_INSTANCE_DOWN,
                        "expr": f"up{{{job}}} == 0",
                        "for": hold,
                        "labels": {severity: spec.critical},
                        "annotations": {
                            "summary": "Prometheus cannot scrape {{ $labels.instance }}"
                        },
                    },
                    {
                        "alert": ALERT_ERROR_RATE,
                        "expr": (
                            f"sum by (job) (rate({errors}[{RATE_WINDOW}])) / "
                            f"sum by (job) (rate({requests}[{RATE_WINDOW}])) > {spec.error_ratio}"
                        ),
                        "for": hold,
                        "labels": {severity: spec.critical},
                        "annotations": {"summary": "5xx ratio above the operations plan limit"},
                    },
                    {
                        "alert": ALERT_LATENCY,
                        "expr": (
                            "histogram_quantile(0.95, sum by (job, le) "
                            f"(rate({buckets}[{RATE_WINDOW}]))) > {spec.latency_s}"
                        ),
                        "for": hold,
                        "labels": {severity: WARNING_SEVERITY},
                        "annotations": {"summary": "p95 latency above the operations plan limit"},
                    },
                ],
            }
        ]
    }


def prometheus_config(spec: ScrapeSpec, rules_file: Path | None) -> dict[str, Any]:
    """prometheus.yml (as JSON, which is YAML) scraping ``spec.url`` over HTTPS."""
    address = spec.url.split("://", 1)[1].rstrip("/")
    interval = _duration(spec.interval_s)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_file)] if rules_file else [],
        "scrape_configs": [
            {
                "job_name": spec.job,
                "scheme": spec.url.split("://", 1)[0],
                "metrics_path": PATHS.metrics,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "tls_config": {"ca_file": spec.ca_file},
                "static_configs": [{"targets": [address]}],
            }
        ],
    }


def write_config(folder: Path, spec: ScrapeSpec) -> Path:
    rules_file: Path | None = None
    # FAULT alert_rules_missing: the platform starts Prometheus without its rules file.
    if not spec.without_rules:
        rules_file = folder / "rules.yml"
        rules_file.write_text(json.dumps(alert_rules(spec), indent=2), encoding="utf-8")
    config = folder / "prometheus.yml"
    config.write_text(json.dumps(prometheus_config(spec, rules_file), indent=2), encoding="utf-8")
    return config


# -- a shared local server ------------------------------------------------------------------


def binary() -> str:
    found = shutil.which(PROMETHEUS_BINARY) or (
        DEBIAN_BINARY if os.access(DEBIAN_BINARY, os.X_OK) else None
    )
    if found is None:
        raise PrometheusUnavailable(
            "the prometheus binary is not installed; install the Debian package "
            "(apt-get install prometheus, which ./bootstrap does) or set "
            "monitoring.prometheus_url to a running Prometheus"
        )
    return found


def run_folder(run_id: str, target: str) -> Path:
    """Where the Prometheus of one run and target keeps its files (shared by xdist workers)."""
    return Path(tempfile.gettempdir()) / f"postdeploy-{run_id}" / f"prometheus-{target}"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    try:
        with exclusive_lock(folder / "lock", LOCK_TIMEOUT_S, POLL_INTERVAL_S):
            yield
    except LockTimeout as exc:
        raise PrometheusUnavailable(str(exc)) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped) is not alive
    with contextlib.suppress(OSError):
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    return True


def _live_users(folder: Path) -> list[int]:
    users = folder / "users"
    alive = []
    for entry in users.glob("*") if users.is_dir() else ():
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid and _pid_alive(pid):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return alive


def _instance(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((folder / "instance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if _pid_alive(int(info.get("supervisor", 0))) else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _start(folder: Path, spec: ScrapeSpec) -> dict[str, Any]:
    config = write_config(folder, spec)
    port = _free_port()
    data = folder / f"data-{secrets.token_hex(4)}"
    command = [
        binary(), f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address={HOST}:{port}", "--log.level=warn",
        "--storage.tsdb.retention.time=1h",
    ]  # fmt: skip
    log_file = folder / "prometheus.log"
    with open(log_file, "ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "postdeploy.monitoring.prometheus",
             "--supervise", str(folder), "--",
             *command],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    info: dict[str, Any] = {
        "supervisor": supervisor.pid,
        "url": f"http://{HOST}:{port}",
        "data": str(data),
    }
    api = PrometheusAPI(info["url"], READY_PROBE_TIMEOUT_S)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if supervisor.poll() is not None:
                break
            if api.ready():
                (folder / "instance.json").write_text(json.dumps(info), encoding="utf-8")
                return info
            time.sleep(POLL_INTERVAL_S)
    finally:
        api.close()
    _stop(info)
    tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-10:]
    raise PrometheusUnavailable(
        f"the local Prometheus did not become ready on {info['url']} within "
        f"{START_TIMEOUT_S:.0f} s; last lines of {log_file}:\n" + "\n".join(tail)
    )


def _stop(info: Mapping[str, Any]) -> None:
    pid = int(info["supervisor"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S + 1
    while time.monotonic() < deadline and _pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(POLL_INTERVAL_S)
    if _pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def shared_local_prometheus(folder: Path, spec: ScrapeSpec) -> Iterator[str]:
    """The URL of the Prometheus for ``folder`` (one run and target), started if needed."""
    folder.mkdir(parents=True, exist_ok=True)
    me = folder / "users" / str(os.getpid())
    with _locked(folder):
        me.parent.mkdir(exist_ok=True)
        me.touch()
        info = _instance(folder)
        if info is None:
            try:
                info = _start(folder, spec)
            except BaseException:
                me.unlink(missing_ok=True)
                raise
    try:
        yield str(info["url"])
    finally:
        with _locked(folder):
            me.unlink(missing_ok=True)
            last = not _live_users(folder)
            if last:
                current = _instance(folder)
                if current is not None:
                    _stop(current)
                (folder / "instance.json").unlink(missing_ok=True)
        if last:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.parent.rmdir()


# -- the supervisor process -----------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _no_users_left(folder: Path) -> bool:
    """True (and the instance unregistered) when no registered user process is alive."""
    with open(folder / "lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if _live_users(folder):
            return False
        (folder / "instance.json").unlink(missing_ok=True)
        return True


def supervise(folder: Path, command: Sequence[str]) -> int:
    """Run ``command`` (prometheus) until SIGTERM, its exit, or until no user is alive."""
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while not stopping and child.poll() is None and not _no_users_left(folder):
        time.sleep(SUPERVISE_INTERVAL_S)
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Supervise a harness-started Prometheus")
    parser.add_argument("--supervise", type=Path, required=True, metavar="FOLDER")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return supervise(args.supervise, command)


if __name__ == "__main__":
    sys.exit(main())
