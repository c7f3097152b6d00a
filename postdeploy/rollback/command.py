"""Rollback driver for any other platform: a command the user gives.

``rollback_command`` (split like a shell would, run without one) puts a release back; it gets
``POSTDEPLOY_TARGET``, ``POSTDEPLOY_FROM_RELEASE`` and ``POSTDEPLOY_TO_RELEASE`` in its
environment and says it worked by exiting 0. If it prints a JSON object with an ``id`` on
stdout, that is the release it created.

``releases_command`` (optional) prints the releases as JSON, newest first: a list of objects
(or ``{"releases": [...]}``) with ``id`` and optionally ``version``, ``ref``, ``status``,
``created_at``, ``can_rollback`` and ``current`` (true on the one serving now). Without it
postdeploy knows two releases, ``current`` and ``previous``, and the command decides what
``previous`` means; the restored release's version is then unknown, so the verification
re-runs the gating checks without ``--expect-version``.

``logs_command`` (optional) prints the app's recent log lines, oldest first; it gets
``POSTDEPLOY_TARGET``, ``POSTDEPLOY_LOG_LINES`` and ``POSTDEPLOY_LOG_SINCE`` (RFC 3339).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from postdeploy.rollback._http import (
    DEFAULT_WAIT_TIMEOUT_S,
    Clock,
    Sleep,
    rollback_setting,
    wait_for,
)
from postdeploy.rollback._process import find_executable, run_tool
from postdeploy.rollback.base import (
    LOG_WINDOW_S,
    Call,
    DriverError,
    DriverUnavailable,
    Instance,
    LifecycleDefaults,
    Release,
)

if TYPE_CHECKING:
    from postdeploy.config import Target

SERVING_STATUSES = frozenset({"live", "current", "serving", "active", "deployed"})
CURRENT, PREVIOUS = "current", "previous"


def release_from_json(item: Mapping[str, Any]) -> Release:
    return Release(
        id=str(item["id"]),
        version=str(item.get("version", "")),
        ref=str(item.get("ref", "")),
        status=str(item.get("status", "")),
        created_at=str(item.get("created_at", "")),
        can_rollback=bool(item.get("can_rollback", True)),
        extra={"current": True} if item.get("current") else {},
    )


class CommandDriver(LifecycleDefaults):
    platform = "command"

    def __init__(
        self,
        target: Target,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        import time

        self.target = target
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.rollback_argv = shlex.split(str(target.settings.get("rollback_command", "")))
        self.releases_argv = shlex.split(str(target.settings.get("releases_command", "")))
        self.logs_argv = shlex.split(str(target.settings.get("logs_command", "")))
        self.wait_timeout_s = rollback_setting(target, "wait_timeout_s", DEFAULT_WAIT_TIMEOUT_S)
        self.poll_interval_s = rollback_setting(target, "poll_interval_s", 1.0)

    def __repr__(self) -> str:
        return f"CommandDriver(target={self.target.name!r})"

    def _what(self, doing: str) -> str:
        return f"command: {doing} (target {self.target.name!r})"

    def preflight(self) -> None:
        for key, argv in (
            ("rollback_command", self.rollback_argv),
            ("releases_command", self.releases_argv),
            ("logs_command", self.logs_argv),
        ):
            if key == "rollback_command" and not argv:
                raise DriverUnavailable(self._what("rollback_command is empty; give the command"))
            if argv and find_executable(argv[0]) is None:
                raise DriverUnavailable(
                    self._what(f"{key} runs {argv[0]!r}, which is not on PATH or not executable")
                )

    def releases(self) -> Sequence[Release]:
        if not self.releases_argv:
            return [
                Release(id=CURRENT, status="serving", can_rollback=False, extra={"current": True}),
                Release(id=PREVIOUS, status="unknown"),
            ]
        what = self._what("listing releases with releases_command")
        done = run_tool(
            self.releases_argv, timeout_s=self.target.timeout_s, env=os.environ, what=what
        )
        if done.returncode != 0:
            raise DriverError(f"{what} exited {done.returncode}:\n{done.stderr_tail()}")
        try:
            data = json.loads(done.stdout)
        except ValueError:
            raise DriverError(
                f"{what}: its output is not JSON; print a JSON list of releases"
            ) from None
        items = data.get("releases") if isinstance(data, Mapping) else data
        if not isinstance(items, list) or not all(
            isinstance(i, Mapping) and "id" in i for i in items
        ):
            raise DriverError(f"{what}: print a JSON list of objects that each have an 'id'")
        return [release_from_json(item) for item in items]

    def current(self) -> Release:
        releases = self.releases()
        if not releases:
            raise DriverError(self._what("releases_command printed no releases"))
        for release in releases:
            if release.extra.get("current"):
                return release
        for release in releases:
            if release.status.lower() in SERVING_STATUSES:
                return release
        return releases[0]

    def current_app_version(self) -> str | None:
        """The version ``releases_command`` gives the serving release; None without one."""
        try:
            return self.current().version or None
        except DriverError:
            return None  # the command cannot tell; only --expect-version can

    def _env(self, current: Release, to: Release) -> dict[str, str]:
        return {
            **os.environ,
            "POSTDEPLOY_TARGET": self.target.name,
            "POSTDEPLOY_FROM_RELEASE": current.id,
            "POSTDEPLOY_TO_RELEASE": to.id,
        }

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f"run `{shlex.join(self.rollback_argv)}` with POSTDEPLOY_TARGET="
                f"{self.target.name} POSTDEPLOY_FROM_RELEASE=<serving release> "
                f"POSTDEPLOY_TO_RELEASE={to.id} (stopped after {self.wait_timeout_s:g} s)"
            )
        ]

    def rollback(self, to: Release) -> Release:
        what = self._what(f"rolling back to {to.id} with rollback_command")
        current = self.current()
        done = run_tool(
            self.rollback_argv, timeout_s=self.wait_timeout_s, env=self._env(current, to),
            what=what,
        )  # fmt: skip
        if done.returncode != 0:
            tail = done.stderr_tail()
            raise DriverError(
                f"{what} exited {done.returncode}"
                + (f"; its stderr ends with:\n{tail}" if tail else "")
            )
        try:
            printed = json.loads(done.stdout)
        except ValueError:
            printed = None
        if isinstance(printed, Mapping) and "id" in printed:
            return release_from_json(printed)
        return to

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        """With a releases_command, until it marks ``release`` current; else at once."""
        if not self.releases_argv:
            return True
        return wait_for(
            lambda: self.current().id == release.id, timeout_s=timeout_s,
            interval_s=self.poll_interval_s, clock=self.clock, sleep=self.sleep,
        )  # fmt: skip

    def logs(self, limit: int = 200) -> list[str]:
        """The lines ``logs_command`` prints (the newest ``limit``), run within the target's
        timeout with ``POSTDEPLOY_TARGET``, ``POSTDEPLOY_LOG_LINES`` (``limit``) and
        ``POSTDEPLOY_LOG_SINCE`` (RFC 3339, :data:`LOG_WINDOW_S` ago) in its environment."""
        if not self.logs_argv:
            raise DriverUnavailable(
                self._what(
                    "names no logs_command; give a command that prints the app's recent log "
                    "lines (or set monitoring.loki_url)"
                )
            )
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=LOG_WINDOW_S)
        env = {
            **os.environ,
            "POSTDEPLOY_TARGET": self.target.name,
            "POSTDEPLOY_LOG_LINES": str(limit),
            "POSTDEPLOY_LOG_SINCE": since.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        what = self._what("reading the logs with logs_command")
        done = run_tool(self.logs_argv, timeout_s=self.target.timeout_s, env=env, what=what)
        if done.returncode != 0:
            tail = done.stderr_tail()
            raise DriverError(
                f"{what} exited {done.returncode}"
                + (f"; its stderr ends with:\n{tail}" if tail else "")
            )
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        return lines[-limit:] if limit else []

    def instances(self) -> list[Instance]:
        """A user command cannot address instances: none listed."""
        return []
