"""The protocol every platform's rollback driver implements.

A driver speaks to one platform about one target. It knows the platform's releases, which one
serves now, how to put an earlier one back, how to tell when that one serves, and - where the
platform keeps them - recent logs. The controller (``postdeploy.rollback.controller``) decides
*whether* to roll back; drivers only know *how*.

Drivers raise :class:`DriverError` for anything the platform refused or that went wrong on the
way, with a message that is safe to show (no token, no secret header) and says what to do.

A driver is also where a platform's part in a run's lifecycle lives (:class:`PlatformLifecycle`):
deploying before the run when nothing serves and stopping afterwards, the CA its certificates
come from, the app version of the serving release, and the monitoring services it runs beside
the deployment. Platforms postdeploy only talks to take the defaults of
:class:`LifecycleDefaults` (nothing to do); the local platform, which postdeploy runs itself,
overrides them. So the run, the fixtures, watch and the suites never ask which platform it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from postdeploy.config import Target


#: How far back :meth:`RollbackDriver.logs` looks, in seconds: the log check looks for a request
#: it sent moments ago, and a bounded window keeps every platform's query cheap.
LOG_WINDOW_S = 15 * 60


def log_line(timestamp: object, message: object) -> str:
    """One log line as drivers return them: ``TIMESTAMP MESSAGE``."""
    return f"{timestamp or ''} {message or ''}".strip()


class DriverError(Exception):
    """The platform refused or failed; the message is safe to print and says what to do."""


class DriverUnavailable(DriverError):
    """The driver cannot work for this target (missing token, tool, settings)."""


@dataclass(frozen=True)
class Release:
    """One release of the application as the platform knows it."""

    id: str
    version: str = ""
    #: what the platform redeploys: an image reference, a task definition, a revision name
    ref: str = ""
    status: str = ""
    created_at: str = ""
    #: whether the platform says it can roll back to this release
    can_rollback: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Instance:
    """One instance (a machine, a replica, a process) serving the target now.

    ``headers`` route a request sent to the target's URL to this instance only (Fly.io's
    ``fly-force-instance-id``, the local production shape's ``X-Postdeploy-Instance``); empty
    when the platform cannot address it, then a check reaches it only by repetition.
    """

    id: str
    version: str = ""
    state: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def addressable(self) -> bool:
        return bool(self.headers)

    def describe(self) -> str:
        return f"instance {self.id}" + (f" ({self.version})" if self.version else "")


@dataclass(frozen=True)
class Call:
    """A platform call the driver makes (or would make, in a dry run), safe to print."""

    description: str

    def __str__(self) -> str:
        return self.description


@dataclass(frozen=True)
class SentryEndpoint:
    """A Sentry web API the platform runs for the target (the local platform's stand-in)."""

    api_url: str
    org: str
    project: str
    token: str = field(repr=False)
    #: how messages name where the token came from
    token_source: str
    #: a stand-in following Sentry's documented API, not Sentry
    standin: bool = False


class PlatformServices:
    """Monitoring services a platform runs beside the target's deployment; none by default."""

    def sentry(self) -> SentryEndpoint | None:
        """The Sentry web API the deployment reports to; :class:`DriverError` if it should run
        but does not."""
        return None

    def error_trigger_token(self) -> str | None:
        """The secret of the app's test-only error route, as the platform gave it to the app."""
        return None

    def prometheus(self, run_id: str) -> AbstractContextManager[str] | None:
        """A context yielding the URL of a Prometheus that scrapes the target during the run
        ``run_id`` (started for it if needed, shared by its processes, stopped after)."""
        return None


@runtime_checkable
class PlatformLifecycle(Protocol):
    """A platform's part in a run, beyond rollback: see :class:`LifecycleDefaults`."""

    def prepare(self, run_id: str, expect_version: str | None) -> Target:
        """Before the run: deploy if the platform should and nothing serves; the target as
        clients reach it (see :meth:`client_target`)."""

    def finish(self, run_id: str) -> None:
        """After the run: undo what :meth:`prepare` of the run ``run_id`` started."""

    def client_target(self) -> Target:
        """The target with the CA its certificates come from filled in, where it has one."""

    def current_app_version(self) -> str | None:
        """The app version of the serving release, where the platform knows it (most know
        only their own release ids: v12, a task definition); None otherwise."""

    def services(self) -> PlatformServices | None:
        """The monitoring services the platform runs for the target; None when it runs none."""


class LifecycleDefaults:
    """The lifecycle of a platform postdeploy only talks to: nothing to deploy, stop, trust or
    report. Drivers inherit it and override what their platform does."""

    target: Target

    def __init__(self, target: Target) -> None:
        self.target = target

    def prepare(self, run_id: str, expect_version: str | None) -> Target:
        return self.client_target()

    def finish(self, run_id: str) -> None:
        return None

    def client_target(self) -> Target:
        return self.target

    def current_app_version(self) -> str | None:
        return None

    def services(self) -> PlatformServices | None:
        return None


@runtime_checkable
class RollbackDriver(PlatformLifecycle, Protocol):
    """How postdeploy talks to one platform about one target."""

    platform: str

    def preflight(self) -> None:
        """Raise :class:`DriverUnavailable` if rollback cannot work (token, tool, settings)."""

    def releases(self) -> Sequence[Release]:
        """The platform's releases, newest first."""

    def current(self) -> Release:
        """The release that serves now."""

    def plan(self, to: Release) -> Sequence[Call]:
        """The calls :meth:`rollback` would make to put ``to`` back; no side effects."""

    def rollback(self, to: Release) -> Release:
        """Put ``to`` back; returns the release the platform created or activated."""

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        """Block until ``release`` serves (True) or ``timeout_s`` passes (False)."""

    def logs(self, limit: int = 200) -> Sequence[str]:
        """The serving release's recent log lines, oldest first: at most ``limit`` of them,
        from the last :data:`LOG_WINDOW_S` seconds where the platform can filter by time,
        within the target's timeouts. :class:`DriverError` when the platform refused or the
        target names no log source (:class:`DriverUnavailable`, with the setting to fix)."""

    def instances(self) -> Sequence[Instance]:
        """The instances serving now; empty where the platform cannot tell or address them."""


def previous_good(releases: Sequence[Release], current: Release) -> Release | None:
    """The newest release older than ``current`` that the platform can roll back to.

    ``releases`` is newest first. Releases with the same ``ref`` as the current one are
    skipped: putting back the image that is failing now would be a rollback loop.
    """
    seen_current = False
    for release in releases:
        if release.id == current.id:
            seen_current = True
            continue
        if not seen_current:
            continue
        if release.can_rollback and (not release.ref or release.ref != current.ref):
            return release
    return None
