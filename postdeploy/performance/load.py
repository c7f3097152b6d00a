"""Runs Locust in separate processes, reads its stats, and judges them against thresholds.

Locust (and gevent's monkey-patching with it) never enters the pytest process: this module
only builds command lines, starts ``python -m locust`` — one process, or one master and N
workers for ``--load-workers N`` — with a hard timeout (the single process may be started
ahead by ``load/held.py``, waiting there for its go: :func:`hold_load`), and reads what
Locust wrote (``--json-file``, ``--csv``, ``--html``) plus the summary and cleanup records of
``load/locustfile.py``. The profiles themselves are described in ``load/plans.py``, read here
without importing Locust.

Bounds are enforced three times: a profile that needs more users or time than the target's
``[load]`` section allows is refused before anything starts; the shape caps users and time
(``PD_LOAD_MAX_USERS``, ``PD_LOAD_MAX_DURATION_S``); and the processes are stopped at the
profile's limit plus a grace period whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from postdeploy import paths
from postdeploy.gate import SETUP_FAILED, BackendError
from postdeploy.sysutil import free_port, import_file

if TYPE_CHECKING:
    import pytest

    from postdeploy.config import Target

LOCUSTFILE = "locustfile.py"
PLANS_FILE = "plans.py"
#: Locust started ahead of the load test, waiting for its go (load/held.py).
HELD_LAUNCHER = "held.py"
GO = b"go\n"
#: Process start, imports, and workers connecting to the master.
STARTUP_GRACE_S = 30.0
#: Stopping users, deleting the synthetic accounts, writing the reports.
SHUTDOWN_GRACE_S = 20.0
#: After SIGTERM, how long a process may take to write its stats before SIGKILL.
TERMINATE_WAIT_S = 10.0
#: How long the master waits for its workers to connect.
WORKERS_CONNECT_TIMEOUT_S = 30
#: Most local worker processes --load-workers accepts.
MAX_LOCAL_WORKERS = 32
LOOPBACK = "127.0.0.1"
#: Percentiles reported per endpoint, as Locust computes them.
PERCENTILES = (0.5, 0.95, 0.99)
LOG_TAIL_LINES = 25
STATS_PREFIX = "locust"
HTML_REPORT = "locust-report.html"


#: The system named when Locust fails (the verdict's ``backend``).
SYSTEM = "Locust"


class LoadError(BackendError):
    """A load run could not start or produced no stats; the message says why and what to do.
    Locust's side, not the target's: the load check is broken, never failed."""

    def __init__(self, message: str, how: str = SETUP_FAILED) -> None:
        super().__init__(message, system=SYSTEM, how=how)


# -- the profiles (load/plans.py, read without Locust) --------------------------------------


@functools.cache
def _plans_from(path: Path) -> ModuleType:
    module = import_file(path, "_postdeploy_load_plans")
    if module is None:
        raise LoadError(
            f"the load profiles are missing at {path}; set {paths.LOAD_DIR_ENV} to the folder that "
            f"holds {LOCUSTFILE} and {PLANS_FILE}"
        )
    return module


def plans() -> ModuleType:
    """``load/plans.py``: the profiles, environment variable names and exit codes."""
    return _plans_from(paths.load_dir() / PLANS_FILE)


def profile_names() -> tuple[str, ...]:
    return tuple(plans().PLANS)


def load_profile_option(value: str) -> str:
    """``--load-profile``: a profile name from load/plans.py."""
    try:
        names = profile_names()
    except LoadError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value not in names:
        raise argparse.ArgumentTypeError(
            f"unknown load profile {value!r}; valid profiles: {', '.join(names)}"
        )
    return value


def load_workers_option(value: str) -> int:
    """``--load-workers``: 0 (one Locust process) up to MAX_LOCAL_WORKERS worker processes."""
    try:
        workers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of workers, got {value!r}"
        ) from None
    if not 0 <= workers <= MAX_LOCAL_WORKERS:
        raise argparse.ArgumentTypeError(
            f"expected 0 (one process) to {MAX_LOCAL_WORKERS} workers, got {workers}"
        )
    return workers


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadSettings:
    """One load run: what to run against which host, within which bounds and thresholds."""

    host: str
    profile: str
    workers: int = 0
    max_users: int = 100
    max_duration_s: float = 1800.0
    abort_error_rate: float = 0.1
    abort_min_requests: int = 50
    accounts: int = 10
    error_rate: float = 0.001
    p95_ms: float = 2000.0
    timeout_s: float = 10.0
    ca_file: str = ""
    run_id: str = "manual"
    source: str = "targets.toml"
    target: str = ""

    @classmethod
    def from_target(
        cls, target: Target, run_id: str, profile: str | None = None, workers: int | None = None
    ) -> LoadSettings:
        load = target.load
        return cls(
            host=target.url,
            profile=profile or load.profile,
            workers=int(load.workers if workers is None else workers),
            max_users=int(load.max_users),
            max_duration_s=float(load.max_duration_s),
            abort_error_rate=float(load.abort_error_rate),
            abort_min_requests=int(load.abort_min_requests),
            accounts=int(load.accounts),
            error_rate=float(target.thresholds.error_rate),
            p95_ms=float(target.thresholds.response_time_ms),
            timeout_s=float(target.timeout_s),
            ca_file=target.ca_file,
            run_id=run_id,
            source=target.source,
            target=target.name,
        )

    @property
    def plan(self) -> Any:
        catalogue = plans().PLANS
        if self.profile not in catalogue:
            raise LoadError(
                f"{self.source}: [targets.{self.target}.load] profile = {self.profile!r} is not "
                f"a load profile; valid profiles: {', '.join(catalogue)}"
            )
        return catalogue[self.profile]

    @property
    def time_limit_s(self) -> float:
        """The profile's own limit, or the target's if that is shorter."""
        return float(min(self.plan.max_s, self.max_duration_s))

    def check_bounds(self) -> None:
        """Refuse a profile that needs more users or time than the target allows."""
        plan = self.plan
        where = f"[targets.{self.target}.load]" if self.target else "the load bounds"
        if plan.peak_users > self.max_users:
            raise LoadError(
                f"load profile {plan.name} needs {plan.peak_users} users but {where} "
                f"max_users = {self.max_users}; raise max_users in {self.source} or pick a "
                "smaller profile with --load-profile"
            )
        needed = plan.stages[-1].until_s if plan.stages else plan.min_s
        if needed > self.max_duration_s:
            raise LoadError(
                f"load profile {plan.name} runs {needed:.0f} s but {where} max_duration_s = "
                f"{self.max_duration_s:.0f}; raise max_duration_s in {self.source} or pick a "
                "shorter profile with --load-profile"
            )
        if self.workers and plan.peak_users < self.workers:
            raise LoadError(
                f"--load-workers {self.workers} is more workers than profile {plan.name} has "
                f"users ({plan.peak_users}); use at most {plan.peak_users} workers"
            )


def load_run(config: pytest.Config, target: Target) -> tuple[LoadSettings, Path]:
    """The load test's settings for ``target`` in this run (``--load-profile``,
    ``--load-workers``) and the folder Locust writes to."""
    from postdeploy.settings import settings_of

    run = settings_of(config)
    settings = LoadSettings.from_target(
        target,
        run.run_id,
        profile=config.getoption("postdeploy_load_profile"),
        workers=config.getoption("postdeploy_load_workers"),
    )
    return settings, run.reports_dir / "load" / f"{target.name}-{settings.profile}"


# -- results --------------------------------------------------------------------------------


def percentile(histogram: dict[int, int], count: int, fraction: float) -> float:
    """The response time within which ``fraction`` of requests finished (Locust's method)."""
    wanted = int(count * fraction)
    seen = 0
    for response_time in sorted(histogram, reverse=True):
        seen += histogram[response_time]
        if count - seen <= wanted:
            return float(response_time)
    return 0.0


@dataclass(frozen=True)
class EndpointStats:
    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    max_ms: float

    @property
    def label(self) -> str:
        return f"{self.method} {self.name}".strip()

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def _endpoint(method: str, name: str, entries: list[dict[str, Any]]) -> EndpointStats:
    histogram: dict[int, int] = {}
    requests = failures = timed = 0
    total_time = max_time = 0.0
    for entry in entries:
        requests += entry["num_requests"]
        failures += entry["num_failures"]
        timed += entry["num_requests"] - entry.get("num_none_requests", 0)
        total_time += entry["total_response_time"]
        max_time = max(max_time, entry["max_response_time"] or 0.0)
        for bucket, count in entry["response_times"].items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
    p50, p95, p99 = (percentile(histogram, timed, f) for f in PERCENTILES)
    return EndpointStats(
        method=method,
        name=name,
        requests=requests,
        failures=failures,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        avg_ms=total_time / timed if timed else 0.0,
        max_ms=max_time,
    )


def parse_stats(path: Path) -> tuple[list[EndpointStats], EndpointStats, float]:
    """Per-endpoint stats, the aggregate, and the span from first to last request (s)."""
    entries = json.loads(path.read_text(encoding="utf-8"))
    endpoints = [_endpoint(e["method"], e["name"], [e]) for e in entries]
    total = _endpoint("", "Aggregated", entries)
    starts = [e["start_time"] for e in entries if e.get("start_time")]
    ends = [e["last_request_timestamp"] for e in entries if e.get("last_request_timestamp")]
    span = max(ends) - min(starts) if starts and ends else 0.0
    return sorted(endpoints, key=lambda e: e.label), total, span


def parse_failures(path: Path) -> list[tuple[str, int]]:
    """``(what failed, occurrences)`` from Locust's ``_failures.csv``."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        (f"{row['Method']} {row['Name']}: {row['Error']}", int(row["Occurrences"])) for row in rows
    ]


@dataclass
class LoadResult:
    settings: LoadSettings
    out_dir: Path
    exit_code: int | None
    worker_exit_codes: list[int | None]
    timed_out: bool
    wall_s: float
    endpoints: list[EndpointStats] = field(default_factory=list)
    total: EndpointStats | None = None
    span_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    cleanup: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, int]] = field(default_factory=list)

    @property
    def aborted(self) -> bool:
        return bool(self.summary.get("aborted"))

    @property
    def run_s(self) -> float:
        """How long Locust ran the profile (test start to stop), by its own clock."""
        return float(self.summary.get("run_s") or self.span_s)

    @property
    def overhead_s(self) -> float:
        """Wall time the harness added around the profile's own run time."""
        return self.wall_s - self.run_s

    @property
    def leftovers(self) -> list[str]:
        return [email for record in self.cleanup for email in record.get("leftovers", [])]

    @property
    def accounts_created(self) -> int:
        return sum(int(record.get("created", 0)) for record in self.cleanup)

    @property
    def html_report(self) -> Path:
        return self.out_dir / HTML_REPORT

    def csv_files(self) -> list[Path]:
        return sorted(self.out_dir.glob(f"{STATS_PREFIX}_*.csv"))

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        log = self.out_dir / "master.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def table(self) -> str:
        """Per-endpoint figures as a fixed-width text table."""
        header = f"{'endpoint':<44} {'requests':>8} {'fails':>6} {'p50':>7} {'p95':>7} {'p99':>7}"
        rows = [header, "-" * len(header)]
        for stats in [*self.endpoints, *([self.total] if self.total else [])]:
            rows.append(
                f"{stats.label:<44} {stats.requests:>8} {stats.failures:>6} "
                f"{stats.p50_ms:>5.0f}ms {stats.p95_ms:>5.0f}ms {stats.p99_ms:>5.0f}ms"
            )
        rows.append("")
        rows.append(
            f"profile {self.settings.profile}, {self.settings.workers or 'no'} workers, "
            f"ran {self.run_s:.1f} s (wall {self.wall_s:.1f} s), "
            f"{self.accounts_created} synthetic accounts created, {len(self.leftovers)} left"
        )
        return "\n".join(rows)

    def violations(self) -> list[str]:
        """Why this run does not meet the thresholds; empty when it does."""
        settings = self.settings
        problems = []
        if self.aborted:
            problems.append(f"the run was aborted: {self.summary.get('abort_reason')}")
        if self.timed_out:
            problems.append(
                f"Locust did not finish within {settings.time_limit_s:.0f} s plus "
                f"{STARTUP_GRACE_S + SHUTDOWN_GRACE_S:.0f} s of grace and was stopped"
            )
        total = self.total
        if total is None or total.requests == 0:
            problems.append("no request completed")
            return problems
        if total.error_rate >= settings.error_rate:
            top = "; ".join(f"{what} ({count}x)" for what, count in self.failures[:5])
            problems.append(
                f"error rate {total.error_rate:.2%} ({total.failures} of {total.requests} "
                f"requests failed) is not below {settings.error_rate:.2%}"
                + (f"; failures: {top}" if top else "")
            )
        slow = [e for e in [total, *self.endpoints] if e.p95_ms >= settings.p95_ms]
        if slow:
            figures = ", ".join(f"{e.label} p95 {e.p95_ms:.0f} ms" for e in slow)
            problems.append(f"p95 is not below {settings.p95_ms:.0f} ms: {figures}")
        return problems


# -- running --------------------------------------------------------------------------------


def environment(settings: LoadSettings, out_dir: Path) -> dict[str, str]:
    """What the locustfile reads: profile, CA, bounds, thresholds, where to report."""
    p = plans()
    return {
        **os.environ,
        p.ENV_PROFILE: settings.profile,
        p.ENV_CA_FILE: settings.ca_file,
        p.ENV_RUN_ID: settings.run_id,
        p.ENV_TIMEOUT_S: str(settings.timeout_s),
        p.ENV_ACCOUNTS: str(settings.accounts),
        p.ENV_MAX_USERS: str(settings.max_users),
        p.ENV_MAX_DURATION_S: str(settings.time_limit_s),
        p.ENV_ABORT_ERROR_RATE: str(settings.abort_error_rate),
        p.ENV_ABORT_MIN_REQUESTS: str(settings.abort_min_requests),
        p.ENV_ERROR_RATE: str(settings.error_rate),
        p.ENV_P95_MS: str(settings.p95_ms),
        p.ENV_SUMMARY_FILE: str(out_dir / "summary.json"),
        p.ENV_CLEANUP_FILE: str(out_dir / "cleanup.jsonl"),
    }


def commands(
    settings: LoadSettings, out_dir: Path, master_port: int, held: bool = False
) -> list[list[str]]:
    """The Locust command lines: the master (or single process) first, then the workers.
    ``held``: the single process's, started by ``load/held.py`` to wait for its go."""
    launcher = [str(paths.load_dir() / HELD_LAUNCHER)] if held else ["-m", "locust"]
    locust = [sys.executable, *launcher, "-f", str(paths.load_dir() / LOCUSTFILE)]
    reports = [
        "--json-file", str(out_dir / STATS_PREFIX),
        "--csv", str(out_dir / STATS_PREFIX),
        "--html", str(out_dir / HTML_REPORT),
        "--only-summary",
    ]  # fmt: skip
    main = [*locust, "--headless", "--host", settings.host, *reports]
    if not settings.workers:
        return [main]
    master = [
        *main, "--master",
        "--master-bind-host", LOOPBACK, "--master-bind-port", str(master_port),
        "--expect-workers", str(settings.workers),
        "--expect-workers-max-wait", str(WORKERS_CONNECT_TIMEOUT_S),
    ]  # fmt: skip
    worker = [*locust, "--worker", "--master-host", LOOPBACK, "--master-port", str(master_port)]
    return [master] + [worker] * settings.workers


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Locust writes its stats), then SIGKILL if it does not exit in time."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(TERMINATE_WAIT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _prepare(settings: LoadSettings, out_dir: Path) -> dict[str, str]:
    """Check the bounds, clear what an earlier run left in ``out_dir``; Locust's environment."""
    settings.check_bounds()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (*out_dir.glob(f"{STATS_PREFIX}*"), out_dir / "summary.json"):
        stale.unlink(missing_ok=True)
    (out_dir / "cleanup.jsonl").unlink(missing_ok=True)
    return environment(settings, out_dir)


def _spawn(
    command: list[str], env: dict[str, str], out_dir: Path, log_name: str, stdin: int
) -> subprocess.Popen[bytes]:
    with open(out_dir / log_name, "wb") as log:
        return subprocess.Popen(
            command,
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=out_dir,
            start_new_session=True,
        )


@dataclass
class HeldLoad:
    """Locust started ahead of the load test (one process, no workers): it has imported
    Locust and waits, sending nothing, for :func:`run_load` to give the go. Its start-up
    (about 0.4 s of CPU) is then spent while other checks run, not in the load test's time."""

    settings: LoadSettings
    out_dir: Path
    process: subprocess.Popen[bytes]

    def go(self) -> None:
        assert self.process.stdin is not None
        # A process that already died gets no go; its exit code and log say why.
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.process.stdin.write(GO)
            self.process.stdin.close()

    def release(self) -> None:
        """Not needed after all: without a go it exits, having sent nothing."""
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ValueError):
                self.process.stdin.close()
        try:
            self.process.wait(TERMINATE_WAIT_S)
        except subprocess.TimeoutExpired:
            _stop(self.process)


def release(held: HeldLoad | None) -> None:
    """Release ``held`` if there is one (an early start nobody took)."""
    if held is not None:
        held.release()


def hold_load(settings: LoadSettings, out_dir: Path) -> HeldLoad | None:
    """Start the single Locust process of ``settings`` to wait for its go; None for a
    distributed run (``--load-workers``), whose master and workers start with the test."""
    if settings.workers:
        return None
    env = _prepare(settings, out_dir)
    (command,) = commands(settings, out_dir, 0, held=True)
    process = _spawn(command, env, out_dir, "master.log", subprocess.PIPE)
    return HeldLoad(settings, out_dir, process)


def run_load(settings: LoadSettings, out_dir: Path, held: HeldLoad | None = None) -> LoadResult:
    """Run the profile with Locust in separate processes and read what it measured: the
    ``held`` process (started by :func:`hold_load` with these settings) if given."""
    if held is not None and (held.settings, held.out_dir) != (settings, out_dir):
        held.release()
        held = None
    env = _prepare(settings, out_dir) if held is None else {}
    deadline_s = STARTUP_GRACE_S + settings.time_limit_s + SHUTDOWN_GRACE_S
    started = time.monotonic()
    processes: list[subprocess.Popen[bytes]] = []
    timed_out = False
    try:
        if held is not None:
            processes.append(held.process)
            held.go()
        else:
            lines = commands(settings, out_dir, free_port() if settings.workers else 0)
            for index, command in enumerate(lines):
                log_name = "master.log" if index == 0 else f"worker-{index}.log"
                processes.append(_spawn(command, env, out_dir, log_name, subprocess.DEVNULL))
        master, workers = processes[0], processes[1:]
        try:
            master.wait(deadline_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _stop(master)
        verdicts = {plans().EXIT_OK, plans().EXIT_THRESHOLDS, plans().EXIT_ABORTED}
        # Workers quit with a master that ran; give them time to delete their accounts.
        grace = SHUTDOWN_GRACE_S if master.returncode in verdicts else 0.0
        for worker in workers:
            try:
                worker.wait(grace)
            except subprocess.TimeoutExpired:
                _stop(worker)
    finally:
        for process in processes:
            _stop(process)
    wall_s = time.monotonic() - started
    result = LoadResult(
        settings=settings,
        out_dir=out_dir,
        exit_code=processes[0].returncode,
        worker_exit_codes=[w.returncode for w in processes[1:]],
        timed_out=timed_out,
        wall_s=wall_s,
    )
    _read_outputs(result)
    return result


def _read_outputs(result: LoadResult) -> None:
    out_dir = result.out_dir
    stats_file = out_dir / f"{STATS_PREFIX}.json"
    if not stats_file.exists():
        raise LoadError(
            f"Locust wrote no stats (exit code {result.exit_code}); last lines of "
            f"{out_dir / 'master.log'}:\n{result.log_tail()}"
        )
    result.endpoints, result.total, result.span_s = parse_stats(stats_file)
    summary_file = out_dir / "summary.json"
    if summary_file.exists():
        result.summary = json.loads(summary_file.read_text(encoding="utf-8"))
    cleanup_file = out_dir / "cleanup.jsonl"
    if cleanup_file.exists():
        result.cleanup = [
            json.loads(line) for line in cleanup_file.read_text(encoding="utf-8").splitlines()
        ]
    result.failures = parse_failures(out_dir / f"{STATS_PREFIX}_failures.csv")
    known = {plans().EXIT_OK, plans().EXIT_THRESHOLDS, plans().EXIT_ABORTED}
    if result.exit_code not in known and not result.timed_out:
        raise LoadError(
            f"Locust exited with status {result.exit_code} (not a verdict: the locustfile or "
            f"Locust itself failed); last lines of {out_dir / 'master.log'}:\n"
            f"{result.log_tail()}"
        )
