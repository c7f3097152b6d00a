"""The real Prometheus the local platform runs for a local target: config, rules, lifecycle.

:func:`shared_local_prometheus` runs the Debian package's ``prometheus`` binary with a
generated configuration that scrapes the local target over HTTPS (trusting the local CA) and
loads the alert rules of :func:`alert_rules`. It is started once per run and target, even
under xdist: the processes that use it register in a folder under a lock; the last one to
leave stops it. A small supervisor process (``python -m postdeploy.local.prometheus
--supervise``) also stops it as soon as no registered process is alive, so a killed run
never leaves it behind.

The checks ask it through the suites' client (:mod:`postdeploy.monitoring.prometheus`). This
module does not import that client: the local platform sits below the probes that use it
(the import contracts in pyproject.toml), and all it needs is Prometheus' readiness endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import shutil
import signal
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
from postdeploy.sysutil import LockTimeout, exclusive_lock, free_port, process_alive

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
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
READY_PATH = "/-/ready"
READY_PROBE_TIMEOUT_S = 0.5
PR_SET_PDEATHSIG = 1


class PrometheusUnavailable(Exception):
    """The harness cannot start a local Prometheus (binary missing, failed to start)."""


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


def _live_users(folder: Path) -> list[int]:
    users = folder / "users"
    alive = []
    for entry in users.glob("*") if users.is_dir() else ():
        pid = int(entry.name) if entry.name.isdigit() else 0
        if process_alive(pid):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return alive


def _instance(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((folder / "instance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if process_alive(int(info.get("supervisor", 0))) else None


def _start(folder: Path, spec: ScrapeSpec) -> dict[str, Any]:
    config = write_config(folder, spec)
    port = free_port(HOST)
    data = folder / f"data-{secrets.token_hex(4)}"
    command = [
        binary(), f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address={HOST}:{port}", "--log.level=warn",
        "--storage.tsdb.retention.time=1h",
    ]  # fmt: skip
    log_file = folder / "prometheus.log"
    with open(log_file, "ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "postdeploy.local.prometheus",
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
    with httpx.Client(base_url=info["url"], timeout=READY_PROBE_TIMEOUT_S) as client:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if supervisor.poll() is not None:
                break
            if _ready(client):
                (folder / "instance.json").write_text(json.dumps(info), encoding="utf-8")
                return info
            time.sleep(POLL_INTERVAL_S)
    _stop(info)
    tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-10:]
    raise PrometheusUnavailable(
        f"the local Prometheus did not become ready on {info['url']} within "
        f"{START_TIMEOUT_S:.0f} s; last lines of {log_file}:\n" + "\n".join(tail)
    )


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get(READY_PATH).status_code == httpx.codes.OK
    except httpx.HTTPError:
        return False


def _stop(info: Mapping[str, Any]) -> None:
    pid = int(info["supervisor"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S + 1
    while time.monotonic() < deadline and process_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(POLL_INTERVAL_S)
    if process_alive(pid):
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
    # Blocked once the child runs (it keeps its own default handling): a stop signal then
    # ends the wait between two looks at once, instead of after the rest of a sleep.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    while child.poll() is None and not _no_users_left(folder):
        if signal.sigtimedwait(STOP_SIGNALS, SUPERVISE_INTERVAL_S) is not None:
            break
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
