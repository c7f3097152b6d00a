"""A private PostgreSQL cluster in the state dir for the production shape.

``initdb`` creates it once (password authentication, scram-sha-256, loopback only); the
platform's supervisor runs ``postgres`` on it; the data outlives releases, rollbacks and
stops. PostgreSQL refuses to run as root, so when the platform runs as root (as CI does) the
cluster belongs to, and the server runs as, the unprivileged :data:`ROOT_RUNS_AS` user.

Passwords are generated, kept in files readable only by their owner, and never printed: the
app gets its connection URL through its environment.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from postdeploy.local.binaries import postgres_bin_dir

#: The unprivileged user a root-run platform gives the cluster to.
ROOT_RUNS_AS = "nobody"
SUPERUSER = "postgres"
APP_USER = "la"
APP_DATABASE = "learning_assistant"
HOST = "127.0.0.1"
INITDB_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 2
POLL_S = 0.05
PASSWORD_BYTES = 24
LOG_TAIL_LINES = 12


class PostgresError(Exception):
    """The cluster cannot be created or started; the message says why and what to do."""


@dataclass(frozen=True)
class Cluster:
    """A cluster folder: ``data/`` (PGDATA), ``run/`` (its socket), and the passwords."""

    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def socket_dir(self) -> Path:
        return self.folder / "run"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def run_as(self) -> str:
        """The user the server runs as: empty for the current one."""
        return ROOT_RUNS_AS if os.geteuid() == 0 else ""

    def _password(self, who: str) -> str:
        path = self.folder / f"{who}.password"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(PASSWORD_BYTES), encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def app_url(self) -> str:
        """The app's connection URL (holds a password: environment only, never printed)."""
        return (
            f"postgresql://{APP_USER}:{self._password(APP_USER)}@{HOST}:{self.port}/{APP_DATABASE}"
        )

    def server_argv(self) -> list[str]:
        return [
            str(Path(postgres_bin_dir()) / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "logging_collector=off",
        ]  # fmt: skip

    # -- creation ----------------------------------------------------------------------------

    def check_data_dir(self) -> None:
        """Refuse a data dir that is not a cluster, or not ours, before anything starts."""
        if (self.data / "PG_VERSION").exists():
            self._check_owner()
        elif self.data.exists() and any(self.data.iterdir()):
            raise PostgresError(
                f"{self.data} exists but is not a PostgreSQL data directory (no PG_VERSION): a "
                "stale or damaged state dir. Nothing was changed; move it away to start with an "
                "empty database"
            )
        else:
            self._check_reachable()

    def ensure_created(self) -> bool:
        """Create the cluster unless it exists; True when it was created now."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.check_data_dir()
        if (self.data / "PG_VERSION").exists():
            return False
        self._give_away(self.folder)
        self.socket_dir.mkdir(exist_ok=True)
        self._give_away(self.socket_dir)
        password_file = self.folder / ".initdb-password"
        password_file.touch(mode=0o600)
        password_file.write_text(self._password(SUPERUSER), encoding="utf-8")
        self._give_away(password_file)
        command = [
            str(Path(postgres_bin_dir()) / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=INITDB_TIMEOUT_S,
                user=self._uid(), group=self._gid(), extra_groups=[] if self.run_as else None,
                cwd=self.folder,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise PostgresError(f"initdb did not finish within {INITDB_TIMEOUT_S:.0f} s") from None
        finally:
            password_file.unlink(missing_ok=True)
        if done.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise PostgresError(f"initdb failed for {self.data}: {done.stderr.strip()[-800:]}")
        return True

    def _uid(self) -> int | None:
        return pwd.getpwnam(self.run_as).pw_uid if self.run_as else None

    def _gid(self) -> int | None:
        return pwd.getpwnam(self.run_as).pw_gid if self.run_as else None

    def _give_away(self, path: Path) -> None:
        uid, gid = self._uid(), self._gid()
        if uid is not None and gid is not None:
            os.chown(path, uid, gid)

    def _check_owner(self) -> None:
        uid = self._uid()
        owner = self.data.stat().st_uid
        expected = uid if uid is not None else os.geteuid()
        if owner != expected:
            raise PostgresError(
                f"{self.data} belongs to uid {owner}, but the server would run as uid {expected} "
                "(a state dir made by another user?); use your own POSTDEPLOY_STATE_DIR"
            )

    def _check_reachable(self) -> None:
        """As root the server runs as another user: every parent folder must let it in."""
        if not self.run_as:
            return
        for parent in self.folder.resolve().parents:
            if not parent.stat().st_mode & stat.S_IXOTH:
                raise PostgresError(
                    f"PostgreSQL runs as {self.run_as!r} (it refuses root), who cannot enter "
                    f"{parent}; put the state dir somewhere every user can reach "
                    f"(POSTDEPLOY_STATE_DIR=/tmp/...) or let others through: chmod o+x {parent}"
                )

    # -- after start -------------------------------------------------------------------------

    def wait_ready(self, alive: object) -> None:
        """Connect as the superuser, then make sure the app's role and database exist.

        ``alive`` is a callable telling whether the server process still runs.
        """
        import psycopg

        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            if callable(alive) and not alive():
                raise PostgresError(
                    f"PostgreSQL exited while starting on {self.data} (a corrupt or foreign "
                    f"data directory?). Nothing was deleted; last lines of {self.log}:\n"
                    + self.log_tail()
                )
            try:
                with psycopg.connect(
                    host=HOST, port=self.port, user=SUPERUSER, dbname="postgres",
                    password=self._password(SUPERUSER), connect_timeout=CONNECT_TIMEOUT_S,
                    autocommit=True,
                ) as conn:  # fmt: skip
                    self._ensure_app_database(conn)
                    return
            except psycopg.OperationalError as exc:
                last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                time.sleep(POLL_S)
        raise PostgresError(
            f"PostgreSQL did not accept connections on {HOST}:{self.port} within "
            f"{READY_TIMEOUT_S:.0f} s ({last}); see {self.log}"
        )

    def _ensure_app_database(self, conn: object) -> None:
        from psycopg import sql

        execute = conn.execute  # type: ignore[attr-defined]
        if execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone() is None:
            execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_USER), sql.Literal(self._password(APP_USER))
                )
            )
        found = execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_DATABASE,))
        if found.fetchone() is None:
            execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(APP_DATABASE), sql.Identifier(APP_USER)
                )
            )

    def log_tail(self) -> str:
        if not self.log.exists():
            return "(no log)"
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])
