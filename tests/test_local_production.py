"""The production shape for real: nginx, two instances, PostgreSQL, Prometheus, Alertmanager.

One deployment per module (its own state dir and ports). Each per-instance fault is proven
once here; the issue's 20-of-20 repetition lives in benchmarks/bench_production_shape.py.
The module registers more users a minute than the app's shipped limit allows, so it raises the
registration limit in the open (POSTDEPLOY_LOCAL_PROD_RATE_LIMIT_REGISTER).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from postdeploy.config import load_targets
from postdeploy.local.production import ProductionPlatform
from postdeploy.local.shapes import platform_for
from postdeploy.local.state import LocalPlatformError
from tests.conftest import REPO, SUITE_RUN_TIMEOUT_S, SuiteRun, _outcomes, free_port

TARGET = "local-prod"
CORE = ("suites/functional", "suites/monitoring/test_health.py")
#: Registrations a minute this module needs (the app ships 30/60 s per client).
RAISED_REGISTER_LIMIT = "1000/60"
#: fault -> the gating check that must fail on instance 1 and name it.
PER_INSTANCE = {
    "login_broken": "test_login_returns_a_bearer_token_and_a_session_cookie",
    "health_down": "test_health_endpoint_reports_healthy",
    "progress_not_persisted": "test_a_learning_session_is_recorded_and_progress_reflects_it",
    "wrong_version": "test_health_reports_the_expected_version",
}
GONE_WITHIN_S = 15.0


def _free_base() -> int:
    """A port base whose instance (+1, +2) and database (+10) ports are free."""
    for _ in range(200):
        base = random.randint(20000, 29000)
        ports = (base + 1, base + 2, base + 10)
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port base")


@dataclass
class ProdEnv:
    root: Path
    env: dict[str, str]
    runs: int = 0

    @property
    def platform(self) -> ProductionPlatform:
        target = load_targets(REPO / "targets.toml", environ=self.env).targets[TARGET]
        platform = platform_for(target, state_dir=self.root / "state")
        assert isinstance(platform, ProductionPlatform)
        return platform

    def run(self, *args: str, suites: tuple[str, ...] = CORE, env: dict[str, str] | None = None,
            wait: bool = True) -> SuiteRun | subprocess.Popen[str]:  # fmt: skip
        self.runs += 1
        reports = self.root / f"run-{self.runs}"
        command = [
            sys.executable, "-m", "pytest", *suites, "--target", TARGET,
            "--reports-dir", str(reports), "-p", "no:cacheprovider", "-q", *args,
        ]  # fmt: skip
        options = {"cwd": REPO, "env": {**self.env, **(env or {})}, "text": True}
        if not wait:
            return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True, **options)  # type: ignore[call-overload]  # fmt: skip
        done = subprocess.run(command, capture_output=True, timeout=SUITE_RUN_TIMEOUT_S,
                              check=False, **options)  # type: ignore[call-overload]  # fmt: skip
        verdict_file = reports / "verdict.json"
        verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
        return SuiteRun(done.returncode, done.stdout + done.stderr, verdict,
                        _outcomes(reports / "junit.xml", verdict))  # fmt: skip

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "postdeploy.cli", "local", "--target", TARGET, *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "POSTDEPLOY_STATE_DIR": str(root / "state"),
        "POSTDEPLOY_LOCAL_PROD_URL": f"https://127.0.0.1:{free_port()}",
        "POSTDEPLOY_LOCAL_PROD_PORT_BASE": str(_free_base()),
        "POSTDEPLOY_LOCAL_PROD_MONITORING_PROMETHEUS_URL": f"http://127.0.0.1:{free_port()}",
        "POSTDEPLOY_LOCAL_PROD_MONITORING_ALERTMANAGER_URL": f"http://127.0.0.1:{free_port()}",
        "POSTDEPLOY_LOCAL_PROD_RATE_LIMIT_REGISTER": RAISED_REGISTER_LIMIT,
        "PYTEST_ADDOPTS": "",
    }


def _reachable_dir() -> Path:
    """A folder every user can enter: as root, PostgreSQL runs as nobody (pytest's own
    temporary folders are private to their owner)."""
    return Path(tempfile.mkdtemp(prefix="pd-prod-", dir="/tmp"))


def prod_env(extra: dict[str, str] | None = None) -> Iterator[ProdEnv]:
    """A production-shaped platform of its own (``extra`` added to its environment), stopped
    and removed afterwards: the body of every module's ``prod`` fixture."""
    root = _reachable_dir()
    root.chmod(0o755)
    env = ProdEnv(root, {**_env(root), **(extra or {})})
    yield env
    env.platform.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def prod() -> Iterator[ProdEnv]:
    yield from prod_env()


@pytest.fixture
def reachable() -> Iterator[Path]:
    root = _reachable_dir()
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _processes_of(state_dir: Path) -> list[str]:
    """Live processes that name ``state_dir`` on their command line or run in it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if "pytest" in cmdline or not cmdline:
            continue
        if str(state_dir) in cmdline or cwd.startswith(str(state_dir)):
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def _failure(run: SuiteRun, test: str) -> str:
    messages = [f["message"] for f in run.target(TARGET)["failures"] if test in f["test"]]
    assert messages, f"{test} did not fail:\n{run.output[-2000:]}"
    return messages[0]


# -- a healthy deployment -------------------------------------------------------------------


def test_a_healthy_production_shape_passes_the_core_checks(prod: ProdEnv) -> None:
    prod.platform.deploy("1.0.0")
    run = prod.run(
        "--expect-version", "1.0.0", suites=(*CORE, "suites/security/test_rate_limiting.py")
    )
    assert isinstance(run, SuiteRun)
    assert run.returncode == 0, run.output[-3000:]
    assert run.target(TARGET)["gate"] == "passed"
    assert not run.failed()


def test_status_covers_every_process(prod: ProdEnv) -> None:
    status = prod.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("postgres", "instance-1", "instance-2", "edge", "alertmanager", "prometheus"):
        assert f"  {name} " in status.stdout, status.stdout


def test_logs_come_from_every_instance_and_the_edge_tagged(prod: ProdEnv) -> None:
    lines = prod.platform.logs(500)
    assert any(line.startswith("[edge] ") for line in lines)
    assert any(line.startswith("[instance 1] ") for line in lines)
    assert any(line.startswith("[instance 2] ") for line in lines)


# -- a defect on one instance of two --------------------------------------------------------


@pytest.mark.parametrize("fault", sorted(PER_INSTANCE))
def test_a_fault_on_one_instance_is_caught_and_the_instance_named(
    prod: ProdEnv, fault: str
) -> None:
    prod.platform.deploy("1.1.0", [f"{fault}@1"])
    run = prod.run("-m", "gating", "--expect-version", "1.1.0")
    assert isinstance(run, SuiteRun)
    assert run.target(TARGET)["gate"] == "failed", run.output[-3000:]
    message = _failure(run, PER_INSTANCE[fault])
    assert "instance 1" in message, message
    assert "instance 2:" not in message, message
    kinds = {f["kind"] for f in run.target(TARGET)["failures"] if PER_INSTANCE[fault] in f["test"]}
    assert kinds == {"failed"}


def test_a_limiter_keyed_on_the_proxy_is_caught(prod: ProdEnv) -> None:
    prod.platform.deploy("1.2.0", ["limiter_keys_on_proxy"])
    run = prod.run(suites=("suites/security/test_rate_limiting.py",))
    assert isinstance(run, SuiteRun)
    message = _failure(run, "test_the_login_limit_is_per_client_behind_the_edge")
    assert "keys on the proxy's address" in message, message
    assert "test_login_is_rate_limited_with_retry_after" in run.passed()


def test_a_bad_instance_fails_the_gate_and_is_rolled_back_instance_by_instance(
    prod: ProdEnv,
) -> None:
    platform = prod.platform
    good = platform.deploy("6.0.0")
    # a passing gate of the good release leaves the data marker the verification reads back
    # (the bad release may not write one: its login fails on one instance of two)
    passing = prod.run("-m", "gating", "--rollback", "auto", suites=CORE)
    assert passing.returncode == 0, passing.output[-3000:]
    bad = platform.deploy("6.1.0", ["login_broken@1"])
    run = prod.run("-m", "gating", "--rollback", "auto")
    assert isinstance(run, SuiteRun)
    verdict = run.target(TARGET)
    assert verdict["gate"] == "failed", run.output[-3000:]
    rollback = verdict["rollback"]
    assert rollback["status"] == "succeeded", rollback
    assert rollback["from_release"]["id"] == str(bad.id)
    assert rollback["to_release"]["id"] == str(good.id)
    assert rollback["verification"]["status"] == "passed", rollback["verification"]
    assert {(i.version, tuple(i.faults)) for i in platform.read_instances()} == {("6.0.0", ())}


# -- rollouts -------------------------------------------------------------------------------


def test_a_version_check_in_the_middle_of_a_rollout_waits_for_it(prod: ProdEnv) -> None:
    platform = prod.platform
    platform.deploy("2.0.0")
    deploying = threading.Thread(target=platform.deploy, args=("2.1.0",), kwargs={"pause_s": 4})
    deploying.start()
    try:
        deadline = time.monotonic() + 30
        while {i.version for i in platform.read_instances()} != {"2.0.0", "2.1.0"}:
            assert time.monotonic() < deadline, "the rollout never showed two versions"
            time.sleep(0.05)
        run = prod.run("--expect-version", "2.1.0", "-k", "expected_version")
    finally:
        deploying.join()
    assert isinstance(run, SuiteRun)
    assert run.returncode == 0, run.output[-3000:]
    assert "test_health_reports_the_expected_version" in run.passed()


def test_no_request_fails_while_a_release_rolls_out(prod: ProdEnv) -> None:
    platform = prod.platform
    platform.deploy("2.2.0")
    deploying = threading.Thread(target=platform.deploy, args=("2.3.0",))
    answers: list[str] = []
    trust = ssl.create_default_context(cafile=platform.ca_file)
    with httpx.Client(base_url=platform.url, verify=trust, timeout=5.0) as client:
        deploying.start()
        while deploying.is_alive():
            try:
                answers.append(str(client.get("/api/health").status_code))
            except httpx.TransportError as exc:
                answers.append(type(exc).__name__)
            time.sleep(0.02)
    deploying.join()
    assert answers, "no request was sent during the rollout"
    failed = [a for a in answers if a != "200"]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed during the rollout"
    assert {i.version for i in platform.read_instances()} == {"2.3.0"}


def test_a_stalled_rollout_fails_with_what_was_seen(prod: ProdEnv) -> None:
    platform = prod.platform
    platform.deploy("2.9.0")
    platform.deploy("3.0.0", canary=1)  # instance 1 only: the rollout stops there
    run = prod.run(
        "--expect-version", "3.0.0", "-k", "expected_version",
        env={"POSTDEPLOY_LOCAL_PROD_ROLLOUT_TIMEOUT_S": "3"},
    )  # fmt: skip
    assert isinstance(run, SuiteRun)
    message = _failure(run, "test_health_reports_the_expected_version")
    assert "did not finish within 3 s" in message, message
    assert "instance 2 reports '2.9.0'" in message, message
    assert "instance 1 reports '3.0.0'" in message, message


def test_status_reports_a_killed_instance(prod: ProdEnv) -> None:
    platform = prod.platform
    platform.deploy("4.0.0")
    victim = next(i for i in platform.read_instances() if i.id == "2")
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while (status := prod.cli("status")).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.returncode == 1
    assert "instance-2" in status.stdout
    assert "DEAD (exit status -9)" in status.stdout
    assert "DEGRADED: instance-2 not running" in status.stdout


def test_stop_leaves_nothing_running(prod: ProdEnv) -> None:
    prod.platform.stop()
    deadline = time.monotonic() + GONE_WITHIN_S
    while _processes_of(prod.root / "state") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_of(prod.root / "state")


# -- a run that deploys for itself ----------------------------------------------------------


def test_a_sigkilled_run_leaves_nothing_running(reachable: Path) -> None:
    tmp_path = reachable
    prod = ProdEnv(tmp_path, _env(tmp_path))
    run = prod.run(suites=("suites/monitoring/test_prometheus.py",), wait=False)
    assert isinstance(run, subprocess.Popen)
    platform = prod.platform
    try:
        deadline = time.monotonic() + 60
        while platform.current() is None:
            assert run.poll() is None, "the run ended before it deployed"
            assert time.monotonic() < deadline, "the run did not deploy within 60 s"
            time.sleep(0.1)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + GONE_WITHIN_S
        while _processes_of(tmp_path / "state") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _processes_of(tmp_path / "state")
        assert platform.current() is None
    finally:
        platform.stop()


# -- a state dir left behind ----------------------------------------------------------------


def test_a_killed_supervisor_takes_everything_and_the_next_deploy_starts_afresh(
    reachable: Path,
) -> None:
    prod = ProdEnv(reachable, _env(reachable))
    platform = prod.platform
    try:
        platform.deploy("1.0.0")
        deployment = platform.status().deployment
        assert deployment is not None
        instances = [i.pid for i in platform.read_instances()]
        os.kill(deployment.pid, signal.SIGKILL)
        deadline = time.monotonic() + GONE_WITHIN_S
        while any(Path(f"/proc/{pid}").exists() for pid in instances):
            assert time.monotonic() < deadline, "instances outlived their supervisor"
            time.sleep(0.1)
        status = prod.cli("status")
        assert status.returncode == 1
        assert "NOT running: the supervisor" in status.stdout
        assert platform.deploy("1.1.0").version == "1.1.0"  # the stale state is cleared
        assert platform.current() is not None
    finally:
        platform.stop()


def test_a_corrupt_database_is_a_clear_error_and_nothing_is_deleted(reachable: Path) -> None:
    prod = ProdEnv(reachable, _env(reachable))
    platform = prod.platform
    platform.deploy("1.0.0")
    platform.stop()
    control = platform.cluster.data / "global" / "pg_control"
    control.write_bytes(b"\0" * 64)
    try:
        with pytest.raises(LocalPlatformError, match="PostgreSQL exited while starting") as failure:
            platform.deploy("1.1.0")
        assert "Nothing was deleted" in str(failure.value)
        assert (platform.cluster.data / "PG_VERSION").exists()
        assert control.read_bytes() == b"\0" * 64
        assert platform.current() is None
        assert not _processes_of(reachable / "state")
    finally:
        platform.stop()


# -- the catalogue, whole, in this shape ----------------------------------------------------


def _catalogue() -> list[tuple[str, tuple[str, ...], dict[str, str] | set[str], set[str]]]:
    """(fault, suites, must fail, must pass) from the single-process shape's self-tests."""
    from tests.monitoring.test_suite_local import FAULTS as MONITORING_FAULTS
    from tests.test_validation_local import CORE as FUNCTIONAL
    from tests.test_validation_local import FAULTS as FUNCTIONAL_FAULTS

    cases = [(f, FUNCTIONAL, fail, ok) for f, (fail, ok) in FUNCTIONAL_FAULTS.items()]
    cases += [(f"{f}", suites, fail, ok) for f, (suites, fail, ok) in MONITORING_FAULTS.items()]
    return cases


#: The monitoring self-tests' short waits, for this target.
SHORT_WAITS = {
    "POSTDEPLOY_LOCAL_PROD_MONITORING_SENTRY_WAIT_S": "3",
    "POSTDEPLOY_LOCAL_PROD_MONITORING_LOG_WAIT_S": "2",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "suites", "must_fail", "must_pass"),
    _catalogue(),
    ids=[f"{case[0]}-{case[1][0].split('/')[-1]}" for case in _catalogue()],
)
def test_each_fault_is_caught_in_the_production_shape(
    prod: ProdEnv,
    fault: str,
    suites: tuple[str, ...],
    must_fail: dict[str, str] | set[str],
    must_pass: set[str],
) -> None:
    prod.platform.deploy("5.1.0", [fault])
    # the functional catalogue names the words each failure must carry; the monitoring one
    # names the checks (each must still *fail*, never break)
    caught_by = must_fail if isinstance(must_fail, dict) else dict.fromkeys(must_fail, "")
    selected = " or ".join(sorted({*caught_by, *must_pass}))
    # -k=EXPR, not -k EXPR: pytest's rootdir check reads a spaced option value as a path, and
    # a long expression is a file name too long for the system (OSError).
    run = prod.run("--expect-version", "5.1.0", f"-k={selected}", suites=suites, env=SHORT_WAITS)
    assert isinstance(run, SuiteRun)
    run.assert_caught(caught_by)
    assert must_pass <= run.passed(), f"collateral: {must_pass - run.passed()}"
