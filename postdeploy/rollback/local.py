"""Driver of the local platform (``postdeploy.local``): rollback, and the run's lifecycle.

Unlike the cloud platforms, postdeploy runs this one itself, so its driver overrides the
lifecycle hooks of :class:`~postdeploy.rollback.base.LifecycleDefaults`: a run deploys the
reference app when nothing serves and stops it afterwards, clients trust the local CA, the
serving release's version is known, and the platform's monitoring services are the local
Sentry stand-in each deployment reports to and a real Prometheus started for the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ssl
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import httpx

from postdeploy.local import sentry_standin
from postdeploy.local.platform import (
    DEFAULT_VERSION,
    LocalPlatform,
    LocalPlatformError,
    LocalRelease,
)
from postdeploy.local.shapes import platform_for
from postdeploy.rollback.base import (
    Call,
    DriverError,
    DriverUnavailable,
    Instance,
    LifecycleDefaults,
    PlatformServices,
    Release,
    SentryEndpoint,
)

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.local.prometheus import ScrapeSpec

POLL_INTERVAL_S = 0.1
#: The platform-side fault that starts the local Prometheus without its alert rules.
FAULT_NO_ALERT_RULES = "alert_rules_missing"
STANDIN_TOKEN_SOURCE = "the local stand-in"  # noqa: S105 - names where a token came from


def _release(release: LocalRelease) -> Release:
    return Release(
        id=str(release.id),
        version=release.version,
        ref=release.ref,
        status="deployed",
        created_at=release.deployed_at,
        extra={"faults": list(release.faults)},
    )


class LocalServices(PlatformServices):
    """What the local platform runs beside a deployment for the monitoring suite."""

    def __init__(self, target: Target, local: LocalPlatform) -> None:
        self.target = target
        self.local = local

    def sentry(self) -> SentryEndpoint:
        standin = sentry_standin.running(self.local.state_dir)
        if standin is None:
            raise DriverError(
                f"the local Sentry stand-in is not running for {self.local.state_dir}; it "
                "starts with each local deployment - redeploy (postdeploy local deploy VERSION)"
            )
        return SentryEndpoint(
            standin.url,
            sentry_standin.ORG,
            sentry_standin.PROJECT,
            standin.api_token,
            STANDIN_TOKEN_SOURCE,
            standin=True,
        )

    def error_trigger_token(self) -> str | None:
        return sentry_standin.read_trigger_token(self.local.state_dir)

    def prometheus(self, run_id: str) -> AbstractContextManager[str]:
        """A real Prometheus scraping the deployment, one per run and target (see
        :func:`postdeploy.local.prometheus.shared_local_prometheus`)."""
        from postdeploy.local.prometheus import run_folder, shared_local_prometheus

        return shared_local_prometheus(run_folder(run_id, self.target.name), self._scrape_spec())

    def _scrape_spec(self) -> ScrapeSpec:
        from postdeploy.local.prometheus import ScrapeSpec

        settings = self.target.monitoring
        current = self.local.current()
        return ScrapeSpec(
            url=self.target.url,
            ca_file=self.target.ca_file or str(self.local.ca_file),
            job=settings.scrape_job,
            interval_s=settings.scrape_interval_s,
            error_ratio=self.target.thresholds.error_rate,
            latency_s=self.target.thresholds.response_time_ms / 1000,
            severity_label=settings.severity_label,
            critical=settings.critical_severity,
            # a platform-side fault of the serving release: Prometheus gets no rules
            without_rules=current is not None and FAULT_NO_ALERT_RULES in current.faults,
        )


class LocalDriver(LifecycleDefaults):
    platform = "local"

    def __init__(self, target: Target, platform: LocalPlatform | None = None) -> None:
        self.target = target
        self.local = platform or platform_for(target)

    # -- the run's lifecycle ---------------------------------------------------------------

    def prepare(self, run_id: str, expect_version: str | None) -> Target:
        """Deploy the reference app (``expect_version``, else the default) if nothing serves."""
        self.local.ensure_deployed(expect_version or DEFAULT_VERSION, run_id)
        return self.client_target()

    def finish(self, run_id: str) -> None:
        """Stop the local deployment if the run ``run_id`` started it."""
        with contextlib.suppress(LocalPlatformError):
            self.local.stop_if_started_by(run_id)

    def client_target(self) -> Target:
        """The target trusting the local CA (unless it names a CA of its own)."""
        if self.target.ca_file:
            return self.target
        return dataclasses.replace(self.target, ca_file=str(self.local.ca_file))

    def current_app_version(self) -> str | None:
        current = self.local.current()
        return current.version if current else None

    def services(self) -> LocalServices:
        return LocalServices(self.target, self.local)

    # -- rollback --------------------------------------------------------------------------

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
        how = (
            "instance by instance, replacing"
            if getattr(self.local, "shape", "") == "production"
            else "stopping"
        )
        return [
            Call(
                f"postdeploy local: redeploy release {to.id} ({to.ref}) on {self.local.url}, "
                f"{how} release {self.current().id}"
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

        current = self.local.current()
        if current is None:
            return []
        if isinstance(self.local, ProductionPlatform):
            from postdeploy.local.nginx import INSTANCE_HEADER

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
        return [Instance(id="1", version=current.version, state="started")]
