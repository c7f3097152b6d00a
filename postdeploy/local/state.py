"""The local platform's state folder: its layout, its lock, and the release history file.

Both the platform (:mod:`postdeploy.local.platform`) and the services it runs beside a
deployment (:mod:`postdeploy.local.sentry_standin`) read this folder. This module is what they
share, so neither imports the other::

    state.json          release history and the running deployment (:class:`State`)
    lock                held while a process reads and rewrites state.json
    ca.pem, ...         the local CA and the server certificate
    secret.key          the app's signing key (kept so tokens survive a redeploy)
    learning_assistant.db
    logs/               the app's JSON log lines, one file per release; the services' logs
    sentry-standin/     the local Sentry stand-in each deployment reports to
    error-trigger.token the secret of the app's test-only error route
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from postdeploy.sysutil import LockTimeout, exclusive_lock, process_alive

STATE_FILE = "state.json"
LOCK_FILE = "lock"
LOG_DIR = "logs"
#: What the command line of a deployment's process carries (the app's package name).
APP_MARKER = b"learning_assistant"
LOCK_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.05


class LocalPlatformError(Exception):
    """A local deployment operation failed; the message says why and what to do."""


@dataclass(frozen=True)
class LocalRelease:
    id: int
    version: str
    faults: tuple[str, ...] = ()
    deployed_at: str = ""
    rolled_back_from: int | None = None

    @property
    def ref(self) -> str:
        """What this release *is*: the version and its faults (``1.1.0+login_broken``)."""
        return self.version + (f"+{','.join(sorted(self.faults))}" if self.faults else "")

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LocalRelease:
        return cls(
            id=int(data["id"]),  # type: ignore[call-overload]
            version=str(data["version"]),
            faults=tuple(data.get("faults") or ()),  # type: ignore[arg-type]
            deployed_at=str(data.get("deployed_at", "")),
            rolled_back_from=data.get("rolled_back_from"),  # type: ignore[arg-type]
        )


@dataclass
class Deployment:
    """The running process serving a release."""

    release_id: int
    pid: int
    url: str
    started_at: str
    started_by: str = ""


@dataclass
class State:
    releases: list[LocalRelease] = field(default_factory=list)
    deployment: Deployment | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "releases": [asdict(r) for r in self.releases],
                "deployment": asdict(self.deployment) if self.deployment else None,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        deployment = data.get("deployment")
        return cls(
            releases=[LocalRelease.from_dict(r) for r in data.get("releases", [])],
            deployment=Deployment(**deployment) if deployment else None,
        )


def app_alive(pid: int) -> bool:
    """Whether ``pid`` is a running deployment of the app (not a reused pid)."""
    return process_alive(pid, APP_MARKER)


def read(state_dir: Path) -> State:
    """The state of ``state_dir`` (empty when nothing was ever deployed there)."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return State()
    try:
        return State.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise LocalPlatformError(
            f"{path} is corrupt ({exc}); move it away to start afresh "
            "(release history will be lost)"
        ) from None


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[State]:
    """Exclusive access to the state; writes it back when the block succeeds."""
    path = state_dir / STATE_FILE
    try:
        with exclusive_lock(state_dir / LOCK_FILE, LOCK_TIMEOUT_S, POLL_INTERVAL_S):
            state = read(state_dir)
            yield state
            tmp = path.with_suffix(".tmp")
            tmp.write_text(state.to_json(), encoding="utf-8")
            tmp.replace(path)
    except LockTimeout:
        raise LocalPlatformError(
            f"another postdeploy process holds {state_dir / LOCK_FILE} "
            f"for more than {LOCK_TIMEOUT_S:.0f} s; wait for it or stop it"
        ) from None


def deployment_alive(state_dir: Path) -> bool | None:
    """Whether ``state_dir`` has a live deployment; None while someone holds the lock.

    Never waits: a service beside the deployment asks this on a timer and asks again later.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        try:
            deployment = read(state_dir).deployment
        except (OSError, LocalPlatformError):
            return False
        return deployment is not None and app_alive(deployment.pid)
