"""A throwaway PostgreSQL cluster for the app's self-tests (the platform runs its own).

``initdb`` and the server refuse to run as root, so as root every PostgreSQL command runs as
the ``postgres`` OS user (created by the Debian package) through ``runuser``, and the cluster
lives in a fresh folder under /tmp owned by that user (pytest's tmp_path is root-only, 0700).
As a normal user the commands run directly. The server listens on 127.0.0.1 only, with trust
authentication and no fsync (it holds test data for a few seconds), on ``LA_TEST_POSTGRES_PORT``
when set, else on ``TEST_POSTGRES_PORT`` - or, when another run on this shared machine holds
that one, on a free port.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TEST_POSTGRES_PORT = 55432
PORT_ENV = "LA_TEST_POSTGRES_PORT"
HOST = "127.0.0.1"
SUPERUSER = "la_test"
OS_USER_AS_ROOT = "postgres"
BIN_GLOB = "/usr/lib/postgresql/*/bin"
START_TIMEOUT_S = 30
START_ATTEMPTS = 3
ADDRESS_IN_USE = "Address already in use"
COMMAND_TIMEOUT_S = 60
INSTALL_HINT = "install the Debian package postgresql (apt-get install -y postgresql)"


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(glob.glob(BIN_GLOB), key=lambda path: int(Path(path).parent.name))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((HOST, port)) == 0


@dataclass
class Cluster:
    bin_dir: Path
    root: Path
    port: int
    run_as: str | None  # the OS user the server runs as when we are root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{log[-2000:]}"
            )

    def start(self) -> None:
        self.run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_server()
                return
            except RuntimeError as exc:
                # Another run took the port between the check and the bind: take a free one.
                if ADDRESS_IN_USE not in str(exc) or attempt == START_ATTEMPTS:
                    raise
                self.port = free_port()

    def _start_server(self) -> None:
        if port_in_use(self.port):
            if os.environ.get(PORT_ENV):
                raise RuntimeError(f"port {self.port} on {HOST} ({PORT_ENV}) is in use")
            self.port = free_port()
        options = (
            f"-p {self.port} -c listen_addresses={HOST} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file),
            "-o", options, "-w", "-t", str(START_TIMEOUT_S),
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self.run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def new_cluster(bin_dir: Path) -> Cluster:
    """A cluster folder ready for ``start()``, owned by whoever will run the server."""
    root = Path(tempfile.mkdtemp(prefix="la-test-pg-", dir="/tmp"))
    run_as = None
    if os.geteuid() == 0:
        run_as = OS_USER_AS_ROOT
        try:
            account = pwd.getpwnam(OS_USER_AS_ROOT)
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(
                f"as root the test server runs as the OS user {OS_USER_AS_ROOT!r}, which does "
                f"not exist: {INSTALL_HINT} (it creates the user), or run as a normal user"
            ) from None
        os.chown(root, account.pw_uid, account.pw_gid)
    port = int(os.environ.get(PORT_ENV) or TEST_POSTGRES_PORT)
    return Cluster(bin_dir=bin_dir, root=root, port=port, run_as=run_as)
