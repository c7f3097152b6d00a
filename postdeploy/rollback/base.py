"""The protocol every platform's rollback driver implements.

A driver speaks to one platform about one target. It knows the platform's releases, which one
serves now, how to put an earlier one back, how to tell when that one serves, and - where the
platform keeps them - recent logs. The controller (``postdeploy.rollback.controller``) decides
*whether* to roll back; drivers only know *how*.

Drivers raise :class:`DriverError` for anything the platform refused or that went wrong on the
way, with a message that is safe to show (no token, no secret header) and says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from postdeploy.config import Target


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


@runtime_checkable
class RollbackDriver(Protocol):
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
        """Recent log lines, newest last; empty where the platform keeps none."""

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


def driver_target(target: Target) -> str:
    """How a target is named in driver messages: ``fly (https://...)``."""
    return f"{target.name} ({target.url})"
