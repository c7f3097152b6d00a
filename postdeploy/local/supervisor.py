"""A process supervisor for a local deployment of several processes (the production shape).

The production shape is an edge, app instances, a database, Prometheus and Alertmanager. They
must outlive the ``postdeploy local deploy`` command that starts them, yet die with the
deployment - also when nobody calls ``stop`` because the run that deployed was SIGKILLed. So
one small supervisor process (``python -m postdeploy.local.supervisor``) is their parent:

* every child gets ``PR_SET_PDEATHSIG``: if the supervisor itself is killed, the kernel
  signals the children;
* with ``--owner PID`` it stops everything once that process is gone (a ``pytest`` run that
  deployed for itself and was killed);
* the platform asks it, over a Unix socket in the state dir, to start a process, stop one,
  list them (alive or not, exit status), or shut everything down. One JSON object per line
  each way; every call is answered or fails with :class:`SupervisorError`.

The supervisor only knows processes: what they are for is the platform's business.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import pwd
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postdeploy import paths
from postdeploy.sysutil import process_alive

#: Marks the supervisor's command line, so a pid can be checked to still be ours.
PROCESS_MARKER = "postdeploy.local.supervisor"
#: How often the supervisor looks at its children and its owner.
TICK_S = 0.1
#: How long a call may take: stops wait for a graceful exit first.
CALL_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
START_TIMEOUT_S = 5.0
POLL_S = 0.02
PR_SET_PDEATHSIG = 1
#: Longest path of a Unix socket (sun_path, with its NUL).
MAX_SOCKET_PATH = 107
SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "QUIT": signal.SIGQUIT}


class SupervisorError(Exception):
    """The supervisor is not there, refused, or a call failed; the message says why."""


# -- the client -----------------------------------------------------------------------------


class SupervisorClient:
    """Calls to the supervisor listening on ``socket_path``."""

    def __init__(self, socket_path: Path, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        request = json.dumps({"op": op, **args}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(self.timeout_s)
                conn.connect(str(self.socket_path))
                conn.sendall(request)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except (OSError, TimeoutError) as exc:
            raise SupervisorError(
                f"the deployment's supervisor at {self.socket_path} does not answer "
                f"({type(exc).__name__}: {exc}); is the deployment running?"
            ) from None
        try:
            answer: dict[str, Any] = json.loads(data)
        except ValueError:
            raise SupervisorError(f"the supervisor answered {op!r} with {data[:200]!r}") from None
        if not answer.get("ok"):
            raise SupervisorError(str(answer.get("error", "the supervisor refused")))
        return answer

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log: Path,
        cwd: Path,
        user: str = "",
        stop_signal: str = "TERM",
    ) -> int:
        answer = self.call(
            "spawn", name=name, argv=list(argv), env=dict(env), log=str(log), cwd=str(cwd),
            user=user, stop_signal=stop_signal,
        )  # fmt: skip
        return int(answer["pid"])

    def stop(self, name: str) -> None:
        self.call("stop", name=name)

    def processes(self) -> dict[str, dict[str, Any]]:
        return dict(self.call("list")["processes"])

    def shutdown(self) -> None:
        self.call("shutdown")


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) supervisor."""
    return process_alive(pid, PROCESS_MARKER.encode())


def start(
    socket_path: Path, log: Path, *, owner: int = 0, label: str = ""
) -> subprocess.Popen[bytes]:
    """Start a supervisor listening on ``socket_path``; returns once it answers."""
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise SupervisorError(
            f"the state dir path is too long for a Unix socket ({socket_path}); use a shorter "
            "POSTDEPLOY_STATE_DIR"
        )
    socket_path.unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", PROCESS_MARKER, "--socket", str(socket_path)]
    if owner:
        command += ["--owner", str(owner)]
    if label:
        command += ["--label", label]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONPATH": _python_path()},
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    client = SupervisorClient(socket_path, timeout_s=1.0)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(SupervisorError):
            client.call("list")
            return process
        time.sleep(POLL_S)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    raise SupervisorError(
        f"the deployment's supervisor did not start within {START_TIMEOUT_S:.0f} s; see {log}"
    )


def _python_path() -> str:
    """PYTHONPATH for the supervisor: this checkout first, so it runs this code."""
    repo = str(paths.REPO_ROOT)
    return os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))


# -- the supervisor -------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    stop_signal: int
    started_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        code = self.process.poll()
        return {
            "pid": self.process.pid,
            "alive": code is None,
            "returncode": code,
            "started_at": self.started_at,
        }


def _die_with_parent(sig: int) -> Any:
    def preexec() -> None:  # pragma: no cover - runs in the child before exec
        os.setpgid(0, 0)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)

    return preexec


class Supervisor:
    def __init__(self, socket_path: Path, owner: int) -> None:
        self.socket_path = socket_path
        self.owner = owner
        self.children: dict[str, Child] = {}
        self.stopping = False

    # -- operations ------------------------------------------------------------------------

    def spawn(self, request: dict[str, Any]) -> dict[str, Any]:
        name = str(request["name"])
        current = self.children.get(name)
        if current is not None and current.process.poll() is None:
            raise ValueError(f"{name} is already running (pid {current.process.pid})")
        sig = SIGNALS[str(request.get("stop_signal") or "TERM")]
        user = str(request.get("user") or "")
        extra: dict[str, Any] = {}
        if user:
            entry = pwd.getpwnam(user)
            extra = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        with open(request["log"], "ab") as log:
            process = subprocess.Popen(
                [str(a) for a in request["argv"]],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={str(k): str(v) for k, v in request["env"].items()},
                cwd=request["cwd"], preexec_fn=_die_with_parent(sig), **extra,
            )  # fmt: skip
        self.children[name] = Child(name, process, sig)
        return {"pid": process.pid}

    def stop(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is None or child.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, child.stop_signal)
        try:
            child.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        # what the child left in its process group (nginx workers, postgres backends)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in reversed(list(self.children)):
            self.stop(name)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "spawn":
            return {"ok": True, **self.spawn(request)}
        if op == "stop":
            self.stop(str(request["name"]))
            return {"ok": True}
        if op == "list":
            processes = {name: child.describe() for name, child in self.children.items()}
            return {"ok": True, "processes": processes, "pid": os.getpid()}
        if op == "shutdown":
            self.stop_all()
            self.stopping = True
            return {"ok": True}
        return {"ok": False, "error": f"unknown operation {op!r}"}

    # -- the loop --------------------------------------------------------------------------

    def _owner_gone(self) -> bool:
        if not self.owner:
            return False
        try:
            os.kill(self.owner, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _serve_one(self, server: socket.socket) -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(CALL_TIMEOUT_S)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            try:
                answer = self.handle(json.loads(data))
            except Exception as exc:  # every failure goes back to the caller
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            conn.sendall(json.dumps(answer).encode() + b"\n")

    def run(self) -> int:
        def on_term(*_: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket_path.unlink(missing_ok=True)
        server.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        server.listen(8)
        selector = selectors.DefaultSelector()
        selector.register(server, selectors.EVENT_READ)
        try:
            while not self.stopping:
                for _ in selector.select(TICK_S):
                    with contextlib.suppress(OSError):
                        self._serve_one(server)
                if self._owner_gone():
                    print(f"owner {self.owner} is gone: stopping the deployment", flush=True)
                    break
        finally:
            self.stop_all()
            server.close()
            self.socket_path.unlink(missing_ok=True)
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Supervise the processes of a local deployment")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--owner", type=int, default=0, help="Stop everything when it exits")
    parser.add_argument("--label", default="", help="Shown in ps (which deployment)")
    args = parser.parse_args(argv)
    return Supervisor(args.socket, args.owner).run()


if __name__ == "__main__":
    sys.exit(main())
