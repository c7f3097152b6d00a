"""The local platform: real deployments of the reference Learning Assistant on loopback.

A *release* is a version string plus the set of faults it carries. Deploying one starts the
app with uvicorn over HTTPS (certificate from the local CA) as a detached process, on the
target's port, against one SQLite database file that outlives releases, and records it in
the release history. Rolling back redeploys an earlier release as a new history entry, the
way Fly.io or Render do.

State lives in ``POSTDEPLOY_STATE_DIR`` (default ``.postdeploy/`` in the repository); its
layout, lock and history format are :mod:`postdeploy.local.state`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from postdeploy import paths
from postdeploy.local import certs, sentry_standin, tls_profiles
from postdeploy.local import state as local_state
from postdeploy.local.state import (
    Deployment,
    LocalPlatformError,
    LocalRelease,
    State,
    app_alive,
)
from postdeploy.sysutil import import_file

DEFAULT_VERSION = "1.0.0"
APP_FACTORY = "learning_assistant.app:create_app"
#: How long a new deployment may take to answer its first request.
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
POLL_INTERVAL_S = 0.05
DATABASE_FILE = "learning_assistant.db"
#: The platform-side fault of a release whose rollback loses the data written so far (a
#: destructive migration that a rollback cannot undo): the database is wiped on the way back.
FAULT_DATA_LOSS_ON_ROLLBACK = "data_loss_on_rollback"


def load_faults(app_dir: Path | None = None) -> dict[str, str]:
    """The reference app's fault catalogue: name -> what it breaks."""
    path = (app_dir or paths.app_dir()) / "learning_assistant" / "faults.py"
    module = import_file(path, "_postdeploy_app_faults")
    if module is None:
        raise LocalPlatformError(
            f"the reference app's fault catalogue is missing at {path}; "
            f"set {paths.APP_DIR_ENV} to the folder that holds learning_assistant/"
        )
    return dict(module.FAULTS)


@dataclass(frozen=True)
class Status:
    release: LocalRelease | None
    deployment: Deployment | None
    running: bool

    def describe(self) -> str:
        if self.release is None or self.deployment is None:
            return "nothing deployed"
        state = "running" if self.running else "NOT running (process gone)"
        faults = ", ".join(self.release.faults) or "none"
        return (
            f"release {self.release.id}: version {self.release.version}, faults: {faults}\n"
            f"{state}, pid {self.deployment.pid}, {self.deployment.url}, "
            f"since {self.deployment.started_at}"
        )


@dataclass
class ServerOptions:
    """How the server is started for a release; platform-level faults change it."""

    cert_valid_days: float = certs.SERVER_CERT_DAYS
    uvicorn_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def server_options(faults: Sequence[str]) -> ServerOptions:
    """Faults that live in the platform rather than the app (TLS, for example)."""
    options = ServerOptions()
    tls = tls_profiles.server_tls(faults)
    options.uvicorn_args += tls.uvicorn_args
    options.env.update(tls.env)
    if tls.cert_valid_days is not None:
        options.cert_valid_days = tls.cert_valid_days
    return options


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class LocalPlatform:
    """Deploy, inspect, roll back and stop the reference app on this machine."""

    def __init__(
        self, url: str, state_dir: Path | None = None, app_dir: Path | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.hostname is None or parts.port is None:
            raise LocalPlatformError(
                f"the local target's url {url!r} must be https://HOST:PORT on loopback, "
                "e.g. https://127.0.0.1:18443"
            )
        self.url = url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port
        self.state_dir = state_dir or paths.state_dir()
        self.app_dir = app_dir or paths.app_dir()

    # -- state ---------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path:
        return certs.ca_file(self.state_dir)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[State]:
        """Exclusive access to the state; writes it back when the block succeeds."""
        with local_state.locked(self.state_dir) as current:
            yield current

    def _read(self) -> State:
        return local_state.read(self.state_dir)

    def releases(self) -> list[LocalRelease]:
        """Release history, newest first."""
        return list(reversed(self._read().releases))

    def status(self) -> Status:
        state = self._read()
        deployment = state.deployment
        release = None
        if deployment is not None:
            release = next((r for r in state.releases if r.id == deployment.release_id), None)
        running = deployment is not None and app_alive(deployment.pid)
        return Status(release, deployment, running)

    def current(self) -> LocalRelease | None:
        status = self.status()
        return status.release if status.running else None

    # -- operations ----------------------------------------------------------------------

    def check_faults(self, faults: Sequence[str]) -> tuple[str, ...]:
        catalogue = load_faults(self.app_dir)
        unknown = [f for f in faults if f not in catalogue]
        if unknown:
            raise LocalPlatformError(
                f"unknown fault {unknown[0]!r}; known faults: {', '.join(sorted(catalogue))} "
                "(see `postdeploy local faults`)"
            )
        return tuple(sorted(set(faults)))

    def deploy(
        self, version: str = DEFAULT_VERSION, faults: Sequence[str] = (), *, started_by: str = ""
    ) -> LocalRelease:
        """Deploy a new release; the previous one stops first. Returns once it serves."""
        faults = self.check_faults(faults)
        if not version.strip():
            raise LocalPlatformError("the release version is empty; pass e.g. 1.2.0")
        with self._locked() as state:
            return self._launch(state, version.strip(), faults, started_by)

    def redeploy(
        self, release: LocalRelease, *, rolled_back_from: int | None = None
    ) -> LocalRelease:
        """Deploy an earlier release again, as a new history entry."""
        with self._locked() as state:
            started_by = state.deployment.started_by if state.deployment else ""
            return self._launch(
                state, release.version, release.faults, started_by, rolled_back_from
            )

    def rollback(self, to: LocalRelease | None = None) -> LocalRelease:
        """Redeploy ``to`` or else the newest earlier release that differs from the current."""
        status = self.status()
        if status.release is None:
            raise LocalPlatformError("nothing is deployed locally; nothing to roll back")
        if to is None:
            to = next(
                (
                    r
                    for r in self.releases()
                    if r.id < status.release.id and r.ref != status.release.ref
                ),
                None,
            )
            if to is None:
                raise LocalPlatformError(
                    f"release {status.release.id} ({status.release.ref}) has no earlier, "
                    "different release to roll back to"
                )
        if FAULT_DATA_LOSS_ON_ROLLBACK in status.release.faults:
            self._wipe_database()
        return self.redeploy(to, rolled_back_from=status.release.id)

    def _wipe_database(self) -> None:
        """The data_loss_on_rollback fault: the database file (and its journals) is deleted."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            (self.state_dir / (DATABASE_FILE + suffix)).unlink(missing_ok=True)

    def stop(self) -> Deployment | None:
        """Stop the running deployment, if any; history is kept."""
        with self._locked() as state:
            deployment = state.deployment
            if deployment is not None:
                self._terminate(deployment.pid)
                state.deployment = None
            sentry_standin.stop(self.state_dir)
        return deployment

    def ensure_deployed(self, version: str, run_id: str) -> tuple[LocalRelease, bool]:
        """The serving release, deploying ``version`` first if nothing serves.

        Returns the release and whether this call started it. Safe to call from several
        processes at once (xdist workers): the state lock makes exactly one of them deploy.
        """
        with self._locked() as state:
            deployment = state.deployment
            if deployment is not None and app_alive(deployment.pid):
                release = next(r for r in state.releases if r.id == deployment.release_id)
                return release, False
            return self._launch(state, version, (), run_id), True

    def stop_if_started_by(self, run_id: str) -> bool:
        """Stop the deployment if the run ``run_id`` started it (and it still serves)."""
        with self._locked() as state:
            deployment = state.deployment
            if deployment is None or deployment.started_by != run_id:
                return False
            self._terminate(deployment.pid)
            state.deployment = None
            sentry_standin.stop(self.state_dir)
            return True

    def logs(self, limit: int = 200, release_id: int | None = None) -> list[str]:
        """The newest ``limit`` log lines of a release (default: the serving one)."""
        if release_id is None:
            status = self.status()
            if status.release is None:
                return []
            release_id = status.release.id
        path = self._log_file(release_id)
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return lines[-limit:] if limit else lines

    # -- process management --------------------------------------------------------------

    def _log_file(self, release_id: int) -> Path:
        return self.state_dir / local_state.LOG_DIR / f"release-{release_id}.log"

    def _secret_key(self) -> str:
        path = self.state_dir / "secret.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    @staticmethod
    def _next_release(
        state: State, version: str, faults: tuple[str, ...], rolled_back_from: int | None
    ) -> LocalRelease:
        """The record of the release about to be launched (the next id in the history)."""
        return LocalRelease(
            id=max((r.id for r in state.releases), default=0) + 1,
            version=version,
            faults=faults,
            deployed_at=_now(),
            rolled_back_from=rolled_back_from,
        )

    def _launch(
        self,
        state: State,
        version: str,
        faults: tuple[str, ...],
        started_by: str,
        rolled_back_from: int | None = None,
    ) -> LocalRelease:
        """Stop what runs, start a new release in its place, and record it."""
        release = self._next_release(state, version, faults, rolled_back_from)
        if state.deployment is not None:
            self._terminate(state.deployment.pid)
            state.deployment = None
        self._check_port_free()
        pid = self._start(release)
        state.deployment = Deployment(
            release_id=release.id, pid=pid, url=self.url, started_at=_now(), started_by=started_by
        )
        state.releases.append(release)
        return release

    def _check_port_free(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise LocalPlatformError(
                        f"port {self.port} on {self.host} is already in use by another process; "
                        f"stop that process, or use another port with "
                        f"POSTDEPLOY_LOCAL_URL=https://{self.host}:PORT"
                    ) from None
                raise LocalPlatformError(
                    f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
                ) from None

    def _start(self, release: LocalRelease) -> int:
        options = server_options(release.faults)
        tls = certs.issue_server_tls(self.state_dir, valid_days=options.cert_valid_days)
        if not (self.app_dir / "learning_assistant").is_dir():
            raise LocalPlatformError(
                f"the reference app is missing at {self.app_dir / 'learning_assistant'}; "
                f"set {paths.APP_DIR_ENV} to the folder that holds learning_assistant/"
            )
        log_file = self._log_file(release.id)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "LA_VERSION": release.version,
            "LA_FAULTS": ",".join(release.faults),
            "LA_DATABASE": str(self.state_dir / DATABASE_FILE),
            "LA_SECRET_KEY": self._secret_key(),
            # error tracking: the local Sentry stand-in, and the test-only error route's token
            **sentry_standin.deployment_env(self.state_dir),
            **options.env,
        }
        command = [
            sys.executable, "-m", "uvicorn", APP_FACTORY, "--factory",
            "--app-dir", str(self.app_dir),
            "--host", self.host, "--port", str(self.port),
            "--ssl-certfile", str(tls.cert_file), "--ssl-keyfile", str(tls.key_file),
            "--no-server-header", "--no-access-log", "--log-level", "warning",
            "--timeout-graceful-shutdown", "2",
            *options.uvicorn_args,
        ]  # fmt: skip
        with open(log_file, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.state_dir,
                start_new_session=True,
            )
        self._wait_serving(process, tls.ca_file, log_file)
        return process.pid

    def _wait_serving(self, process: subprocess.Popen[bytes], ca: Path, log_file: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(
            verify=ssl.create_default_context(cafile=ca), timeout=httpx.Timeout(2.0, connect=0.5)
        ) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    tail = "\n".join(
                        log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
                    )
                    raise LocalPlatformError(
                        f"the app exited with status {process.returncode} while starting; "
                        f"last lines of {log_file}:\n{tail}"
                    )
                try:
                    client.get(f"{self.url}/api/health")
                    return
                except httpx.TransportError:
                    time.sleep(POLL_INTERVAL_S)
        self._terminate(process.pid)
        raise LocalPlatformError(
            f"the app did not answer on {self.url} within {START_TIMEOUT_S:.0f} s; see {log_file}"
        )

    @staticmethod
    def _terminate(pid: int) -> None:
        if not app_alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not app_alive(pid):
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(POLL_INTERVAL_S)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
