"""Rollback driver for the local platform (``postdeploy.local``)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from postdeploy.local.platform import LocalPlatform, LocalPlatformError, LocalRelease
from postdeploy.local.shapes import platform_for
from postdeploy.rollback.base import Call, DriverError, DriverUnavailable, Instance, Release

if TYPE_CHECKING:
    from postdeploy.config import Target

POLL_INTERVAL_S = 0.1


def _release(release: LocalRelease) -> Release:
    return Release(
        id=str(release.id),
        version=release.version,
        ref=release.ref,
        status="deployed",
        created_at=release.deployed_at,
        extra={"faults": list(release.faults)},
    )


class LocalDriver:
    platform = "local"

    def __init__(self, target: Target, platform: LocalPlatform | None = None) -> None:
        self.target = target
        self.local = platform or platform_for(target)

    def preflight(self) -> None:
        try:
            self.local.check_faults(())
        except LocalPlatformError as exc:
            raise DriverUnavailable(f"target {self.target.name!r}: {exc}") from None

    def releases(self) -> Sequence[Release]:
        return [_release(r) for r in self.local.releases()]

    def current(self) -> Release:
        status = self.local.status()
        if status.release is None:
            raise DriverError(f"target {self.target.name!r}: nothing is deployed locally")
        return _release(status.release)

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f"postdeploy local: redeploy release {to.id} ({to.ref}) on {self.local.url}, "
                f"stopping release {self.current().id}"
            )
        ]

    def rollback(self, to: Release) -> Release:
        match = next((r for r in self.local.releases() if str(r.id) == to.id), None)
        if match is None:
            raise DriverError(f"target {self.target.name!r}: no local release {to.id!r}")
        try:
            return _release(self.local.rollback(match))
        except LocalPlatformError as exc:
            raise DriverError(f"target {self.target.name!r}: {exc}") from None

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        """True once the platform serves ``release`` and the app answers on its URL."""
        deadline = time.monotonic() + timeout_s
        with httpx.Client(
            verify=ssl.create_default_context(cafile=self.local.ca_file), timeout=2.0
        ) as client:
            while time.monotonic() < deadline:
                current = self.local.current()
                if current is not None and str(current.id) == release.id:
                    try:
                        client.get(f"{self.local.url}/api/health")
                        return True
                    except httpx.TransportError:
                        pass
                time.sleep(POLL_INTERVAL_S)
        return False

    def logs(self, limit: int = 200) -> Sequence[str]:
        return self.local.logs(limit)

    def instances(self) -> list[Instance]:
        """The production shape's instances, each addressed through the edge's routing
        header; the single-process shape is one instance, reached at the URL itself."""
        from postdeploy.local.production import ProductionPlatform

        if isinstance(self.local, ProductionPlatform):
            from postdeploy.local.nginx import INSTANCE_HEADER

            if self.local.current() is None:
                return []
            return [
                Instance(
                    id=item.id,
                    version=item.version,
                    state="started",
                    headers={INSTANCE_HEADER: item.id},
                    extra={"release": item.release_id, "port": item.port},
                )
                for item in self.local.read_instances()
            ]
        current = self.local.current()
        if current is None:
            return []
        return [Instance(id="1", version=current.version, state="started")]
