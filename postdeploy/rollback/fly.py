"""Rollback driver for Fly.io, through flyctl (``settings["flyctl"]``, default ``fly``).

Fly.io has no rollback command. Its releases carry the image they ran, so rolling back is
deploying the last good image again:

- releases: ``fly releases --app A --image --json`` - flyctl's Release objects (``Version``,
  ``Status``: running / complete / failed / interrupted, ``ImageRef``, ``CreatedAt``, ...)
- current:  ``fly status --app A --json`` - its ``Version`` is the current release
- rollback: ``fly deploy --app A --image REF`` - flyctl waits for the machines (health checks
  included) and creates a new release that runs REF
- wait:     ``fly releases`` until the newest release runs REF with status ``complete``
- logs:     ``fly logs --app A --no-tail --json`` - the buffered lines, JSON lines
- instances: the Machines API, ``GET /v1/apps/{app}/machines`` (``machines_api_url``, bearer
  token): the started machines of the app's process group; a request reaches one machine
  through the app's URL with the ``fly-force-instance-id: MACHINE_ID`` header

The token goes to flyctl as ``FLY_API_TOKEN`` in its environment, never on its command line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from postdeploy.rollback._http import (
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_WAIT_TIMEOUT_S,
    Clock,
    RestDriver,
    Sleep,
    TransientDriverError,
    rollback_setting,
    wait_for,
)
from postdeploy.rollback._process import Finished, find_executable, run_tool
from postdeploy.rollback.base import (
    LOG_WINDOW_S,
    Call,
    DriverError,
    DriverUnavailable,
    Instance,
    LifecycleDefaults,
    Release,
    log_line,
)

if TYPE_CHECKING:
    from postdeploy.config import Target

#: The variable flyctl reads its token from.
FLYCTL_TOKEN_VAR = "FLY_API_TOKEN"  # noqa: S105 - a variable name, not a token
#: A flyctl query makes a few API calls, each allowed the target's timeout.
API_CALLS_PER_QUERY = 3
#: How long a release list read by current() is reused by releases(): each flyctl run costs
#: about a second, and the controller asks for both right after a gate fails.
RELEASES_FRESH_S = 5.0
COMPLETE = "complete"
FAILED = frozenset({"failed", "interrupted"})
#: Fly's proxy routes a request carrying this header to the machine it names.
FORCE_INSTANCE_HEADER = "fly-force-instance-id"
MACHINES_API_URL = "https://api.machines.dev"
STARTED = "started"
#: The process group that serves HTTP (fly.toml's default).
APP_PROCESS_GROUP = "app"
INSTALL_HINT = "install flyctl (https://fly.io/docs/flyctl/install/) or set flyctl in targets.toml"

#: flyctl's error words -> what to do.
_HINTS = (
    (("unauthorized", "authenticat", "401", "access token"),
     "the token in ${env} is missing, invalid or expired; put a valid Fly.io token in ${env}"),
    (("could not find app", "not found", "404"),
     "check app in targets.toml (`fly apps list` shows the apps this token can see)"),
    (("rate limit", "429", "too many requests"), "Fly.io rate limited postdeploy; retry later"),
    (("lease", "in progress", "currently held"),
     "another deploy holds this app's machines; wait for it to finish, then roll back again"),
)  # fmt: skip


def _release(item: Mapping[str, Any]) -> Release:
    version = item.get("Version")
    status = str(item.get("Status") or "")
    ref = str(item.get("ImageRef") or "")
    return Release(
        id=str(item.get("ID") or f"v{version}"),
        version=f"v{version}",
        ref=ref,
        status=status,
        created_at=str(item.get("CreatedAt") or ""),
        can_rollback=status == COMPLETE and bool(ref),
        extra={
            key: value
            for key, value in (
                ("number", version),
                ("stable", item.get("Stable")),
                ("description", item.get("Description")),
            )
            if value not in (None, "")
        },
    )


def _instance(machine: Mapping[str, Any]) -> Instance:
    config = machine.get("config") or {}
    metadata = config.get("metadata") or {}
    image = machine.get("image_ref") or {}
    release = metadata.get("fly_release_version")
    return Instance(
        id=str(machine.get("id", "")),
        version=f"v{release}" if release else str(image.get("tag") or ""),
        state=str(machine.get("state", "")),
        headers={FORCE_INSTANCE_HEADER: str(machine.get("id", ""))},
        extra={
            key: value
            for key, value in (
                ("region", machine.get("region")),
                ("name", machine.get("name")),
                ("image", f"{image.get('repository', '')}:{image.get('tag', '')}".strip(":")),
            )
            if value
        },
    )


class MachinesAPI(RestDriver):
    """Fly.io's Machines API (REST, bearer token): only what the driver reads from it."""

    platform = "fly"

    def __init__(self, target: Target, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(target, transport=transport)
        self.api_url = str(target.settings.get("machines_api_url") or MACHINES_API_URL).rstrip("/")
        self.token_env = str(target.settings.get("token_env") or FLYCTL_TOKEN_VAR)
        self.app = str(target.settings.get("app", ""))

    def not_found_hint(self) -> str:
        return f"the Machines API knows no app {self.app!r}; check app in targets.toml"

    def machines(self) -> list[dict[str, Any]]:
        body = self._request("GET", f"/v1/apps/{self.app}/machines", what="listing machines")
        if not isinstance(body, list):
            raise DriverError(
                f"fly: listing machines of {self.app!r} answered {type(body).__name__}, "
                "expected a list of machines; is machines_api_url the Machines API?"
            )
        return [m for m in body if isinstance(m, dict)]


class FlyDriver(LifecycleDefaults):
    platform = "fly"

    def __init__(
        self,
        target: Target,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        machines_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.target = target
        self.machines_api = MachinesAPI(target, machines_transport)
        self.clock = clock
        self.sleep = sleep
        self.flyctl = str(target.settings.get("flyctl") or "fly")
        self.app = str(target.settings.get("app", ""))
        self.token_env = str(target.settings.get("token_env") or FLYCTL_TOKEN_VAR)
        self.deploy_timeout_s = rollback_setting(target, "wait_timeout_s", DEFAULT_WAIT_TIMEOUT_S)
        self.poll_interval_s = rollback_setting(target, "poll_interval_s", DEFAULT_POLL_INTERVAL_S)
        self._fetched: tuple[float, list[Release]] | None = None

    def __repr__(self) -> str:
        return f"FlyDriver(target={self.target.name!r}, app={self.app!r})"

    @property
    def query_timeout_s(self) -> float:
        return self.target.timeout_s * API_CALLS_PER_QUERY

    # -- running flyctl ---------------------------------------------------------------------

    def _token(self) -> str:
        token = self.target.secret("token_env")
        if not token:
            raise DriverUnavailable(
                f"fly: target {self.target.name!r}: ${self.token_env} is not set; put a Fly.io "
                "deploy token in it (`fly tokens create deploy --app APP`)"
            )
        return token

    def _env(self, token: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("FLY_ACCESS_TOKEN",)}
        env[FLYCTL_TOKEN_VAR] = token
        env["NO_COLOR"] = "1"
        return env

    def _argv(self, *args: str) -> list[str]:
        return [self.flyctl, *args]

    def _run(self, *args: str, timeout_s: float, doing: str) -> Finished:
        token = self._token()
        what = f"fly: {doing} (target {self.target.name!r})"
        done = run_tool(
            self._argv(*args), timeout_s=timeout_s, env=self._env(token), what=what,
            secrets=(token,),
        )  # fmt: skip
        if done.returncode != 0:
            tail = done.stderr_tail((token,)) or "(no output on stderr)"
            lowered = tail.lower()
            hint = next(
                (h for words, h in _HINTS if any(w in lowered for w in words)),
                "read flyctl's message above",
            ).replace("${env}", f"${self.token_env}")
            error = TransientDriverError if "rate limit" in hint else DriverError
            raise error(f"{what}: `fly {args[0]}` exited {done.returncode}: {tail}\n-> {hint}")
        return done

    def _json(self, *args: str, doing: str) -> Any:
        done = self._run(*args, timeout_s=self.query_timeout_s, doing=doing)
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise DriverError(
                f"fly: {doing}: flyctl printed something that is not JSON; is {self.flyctl!r} "
                "flyctl, and recent enough to know --json?"
            ) from None

    # -- the protocol -----------------------------------------------------------------------

    def preflight(self) -> None:
        if not self.app:
            raise DriverUnavailable(f"fly: target {self.target.name!r} names no app")
        if find_executable(self.flyctl) is None:
            raise DriverUnavailable(
                f"fly: target {self.target.name!r}: flyctl {self.flyctl!r} was not found; "
                + INSTALL_HINT
            )
        self._token()

    def releases(self) -> Sequence[Release]:
        """The releases, newest first; a list read in the last few seconds is reused."""
        if self._fetched is not None and self.clock() - self._fetched[0] < RELEASES_FRESH_S:
            return self._fetched[1]
        return self._fetch_releases()

    def _fetch_releases(self) -> list[Release]:
        data = self._json(
            "releases", "--app", self.app, "--image", "--json",
            doing=f"listing the releases of {self.app}",
        )  # fmt: skip
        if not isinstance(data, list):
            raise DriverError(f"fly: `fly releases --json` for {self.app} did not print a list")
        items = [_release(item) for item in data if isinstance(item, Mapping)]
        releases = sorted(items, key=lambda r: int(r.extra.get("number") or 0), reverse=True)
        self._fetched = (self.clock(), releases)
        return releases

    def current(self) -> Release:
        status = self._json("status", "--app", self.app, "--json", doing=f"reading {self.app}")
        version = status.get("Version") if isinstance(status, Mapping) else None
        releases = self._fetch_releases()
        for release in releases:
            if release.extra.get("number") == version:
                return release
        raise DriverError(
            f"fly: {self.app} reports current release v{version}, which `fly releases` does not "
            "list; run `fly status` and `fly releases --image` to look"
        )

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f"{self.flyctl} deploy --app {self.app} --image {to.ref or '<no image>'} "
                f"({FLYCTL_TOKEN_VAR} from ${self.token_env}; stopped after "
                f"{self.deploy_timeout_s:g} s)"
            ),
            Call(
                f"{self.flyctl} releases --app {self.app} --image --json every "
                f"{self.poll_interval_s:g} s until the newest release runs that image "
                f"with status {COMPLETE}"
            ),
        ]

    def rollback(self, to: Release) -> Release:
        if not to.ref:
            raise DriverError(
                f"fly: release {to.version or to.id} of {self.app} has no image reference; "
                "pick a release that `fly releases --image` shows with an image"
            )
        self._run(
            "deploy", "--app", self.app, "--image", to.ref, timeout_s=self.deploy_timeout_s,
            doing=f"deploying image {to.ref} of {to.version} to {self.app} again",
        )  # fmt: skip
        newest = self._fetch_releases()
        if newest and newest[0].ref == to.ref:
            return newest[0]
        return Release(
            id="", version="", ref=to.ref, status="pending", extra={"rollback_of": to.id}
        )

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        def serving() -> bool:
            releases = self._fetch_releases()
            if not releases or releases[0].ref != release.ref:
                return False
            newest = releases[0]
            if newest.status in FAILED:
                raise DriverError(
                    f"fly: the redeploy of {release.ref} to {self.app} ended {newest.status} "
                    f"({newest.version}); see `fly logs --app {self.app}`"
                )
            return newest.status == COMPLETE

        return wait_for(
            serving, timeout_s=timeout_s, interval_s=self.poll_interval_s, clock=self.clock,
            sleep=self.sleep,
        )  # fmt: skip

    def logs(self, limit: int = 200) -> list[str]:
        """The app's buffered log lines (``fly logs --app A --no-tail --json``: one JSON
        object a line, flyctl's LogEntry ``timestamp``, ``level``, ``instance``, ``region``,
        ``message``), the last ``limit`` of the last :data:`LOG_WINDOW_S` seconds."""
        done = self._run(
            "logs", "--app", self.app, "--no-tail", "--json", timeout_s=self.query_timeout_s,
            doing=f"reading the logs of {self.app}",
        )  # fmt: skip
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=LOG_WINDOW_S)
        lines: list[str] = []
        for raw in done.stdout.splitlines():
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                raise DriverError(
                    f"fly: `fly logs --json` for {self.app} printed a line that is not JSON; is "
                    f"{self.flyctl!r} flyctl, and recent enough to know --json?"
                ) from None
            if not isinstance(entry, Mapping):
                continue
            stamp = str(entry.get("timestamp") or "")
            if _before(stamp, since):
                continue
            lines.append(log_line(stamp, entry.get("message")))
        return lines[-limit:]

    def instances(self) -> list[Instance]:
        """The app's started machines, each addressed with ``fly-force-instance-id``."""
        serving = [
            m
            for m in self.machines_api.machines()
            if m.get("state") == STARTED
            and ((m.get("config") or {}).get("metadata") or {}).get(
                "fly_process_group", APP_PROCESS_GROUP
            )
            == APP_PROCESS_GROUP
        ]
        return [_instance(m) for m in serving]


def _before(stamp: str, since: dt.datetime) -> bool:
    """Whether an RFC 3339 ``stamp`` is older than ``since`` (unparseable: kept)."""
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when.tzinfo is not None and when < since
