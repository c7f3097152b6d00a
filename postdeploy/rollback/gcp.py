"""Rollback driver for Google Cloud Run, through the Cloud Run Admin API v2 (``api_url``).

- releases: ``GET /v2/projects/{p}/locations/{r}/services/{s}/revisions`` - the revisions,
  newest first; a revision can take traffic when its ``Ready`` condition succeeded
- current:  ``GET /v2/projects/{p}/locations/{r}/services/{s}`` - the revision that
  ``trafficStatuses`` shows at 100 % (``latestReadyRevision`` when traffic follows LATEST)
- rollback: ``PATCH`` the service with ``updateMask=traffic`` and
  ``traffic: [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": NAME,
  "percent": 100}]`` - a long-running operation; no new revision is created
- wait:     the service until it is not ``reconciling`` and ``trafficStatuses`` gives that
  revision 100 %
- logs:     Cloud Logging (``logging_url``) ``POST /v2/entries:list`` filtered on
  ``resource.type="cloud_run_revision"``, the service and the serving revision

The token is an OAuth access token (``gcloud auth print-access-token``, or Workload Identity
Federation in CI) in the env var that ``token_env`` names; it needs ``run.services.update``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from postdeploy.rollback._http import RestDriver
from postdeploy.rollback.base import LOG_WINDOW_S, Call, DriverError, Release, log_line

REVISIONS_PAGE_SIZE = 50
BY_REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"
TO_LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
SUCCEEDED = "CONDITION_SUCCEEDED"
FAILED = "CONDITION_FAILED"
FULL = 100
DEFAULT_LOGGING_URL = "https://logging.googleapis.com"
RESOURCE_TYPE = "cloud_run_revision"
#: The most entries one ``entries:list`` is asked for.
LOG_PAGE_MAX = 1000


def short_name(name: str) -> str:
    """``projects/p/locations/r/services/s/revisions/NAME`` -> ``NAME``."""
    return name.rsplit("/", 1)[-1]


def _ready_state(resource: Mapping[str, Any]) -> str:
    for condition in resource.get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("state", ""))
    terminal = resource.get("terminalCondition") or {}
    return str(terminal.get("state", "")) if terminal.get("type") == "Ready" else ""


def _release(revision: Mapping[str, Any]) -> Release:
    name = short_name(str(revision.get("name", "")))
    state = _ready_state(revision)
    images = [str(c.get("image", "")) for c in revision.get("containers") or []]
    return Release(
        id=name,
        version=name,
        ref=name,
        status="ready" if state == SUCCEEDED else (state.lower() or "unknown"),
        created_at=str(revision.get("createTime") or ""),
        can_rollback=state == SUCCEEDED,
        extra={"images": images} if images else {},
    )


def _entry_text(entry: Mapping[str, Any]) -> str:
    """What a LogEntry says: its ``textPayload``, its ``jsonPayload`` (all fields, so a
    request id in any of them can be found), or its ``httpRequest``."""
    if entry.get("textPayload") is not None:
        return str(entry["textPayload"])
    if isinstance(entry.get("jsonPayload"), Mapping):
        return json.dumps(entry["jsonPayload"], sort_keys=True)
    request = entry.get("httpRequest")
    if isinstance(request, Mapping):
        return " ".join(
            str(request.get(key, "")) for key in ("requestMethod", "requestUrl", "status")
        )
    return ""


def serving_revision(service: Mapping[str, Any]) -> str | None:
    """The revision that takes all traffic now, or None while traffic is split."""
    for status in service.get("trafficStatuses") or []:
        if int(status.get("percent") or 0) != FULL:
            continue
        if status.get("revision"):
            return short_name(str(status["revision"]))
        if status.get("type") == TO_LATEST and service.get("latestReadyRevision"):
            return short_name(str(service["latestReadyRevision"]))
    return None


class CloudRunDriver(RestDriver):
    platform = "gcp"

    def not_found_hint(self) -> str:
        return (
            f"Cloud Run has no service {self._service_name} that this token can see; check "
            "project, region and service in targets.toml"
        )

    @property
    def _service_name(self) -> str:
        s = self.target.settings
        return f"projects/{s['project']}/locations/{s['region']}/services/{s['service']}"

    @property
    def _service_path(self) -> str:
        return f"/v2/{self._service_name}"

    def _service(self) -> Mapping[str, Any]:
        body = self._request(
            "GET", self._service_path, what=f"reading service {self._service_name}"
        )
        if not isinstance(body, Mapping):
            raise DriverError(f"gcp: service {self._service_name} came back empty; check api_url")
        return body

    def releases(self) -> Sequence[Release]:
        body = self._request(
            "GET", f"{self._service_path}/revisions", params={"pageSize": REVISIONS_PAGE_SIZE},
            what=f"listing the revisions of {self._service_name}",
        )  # fmt: skip
        revisions = (body or {}).get("revisions") or []
        return sorted((_release(r) for r in revisions), key=lambda r: r.created_at, reverse=True)

    def current(self) -> Release:
        name = serving_revision(self._service())
        if name is None:
            raise DriverError(
                f"gcp: traffic of {self._service_name} is split between revisions; postdeploy "
                "rolls back only a service whose traffic goes 100 % to one revision"
            )
        for release in self.releases():
            if release.id == name:
                return release
        return Release(id=name, version=name, ref=name, status="serving")

    def _traffic(self, to: Release) -> dict[str, Any]:
        return {"traffic": [{"type": BY_REVISION, "revision": to.id, "percent": FULL}]}

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f"PATCH {self.api_url}{self._service_path}?updateMask=traffic "
                f'{{"traffic": [{{"type": "{BY_REVISION}", "revision": "{to.id}", '
                f'"percent": {FULL}}}]}} {self._bearer_note()}'
            ),
            Call(
                f"GET {self.api_url}{self._service_path} every {self.poll_interval_s:g} s until "
                f"trafficStatuses shows {FULL} % on {to.id}"
            ),
        ]

    def rollback(self, to: Release) -> Release:
        if not to.can_rollback:
            raise DriverError(
                f"gcp: revision {to.id} is not ready (status {to.status}); Cloud Run can only "
                "send traffic to a ready revision - pick another one"
            )
        operation = self._request(
            "PATCH", self._service_path, params={"updateMask": "traffic"}, json=self._traffic(to),
            what=f"routing all traffic of {self._service_name} to revision {to.id}",
        )  # fmt: skip
        error = (operation or {}).get("error")
        if error:
            raise DriverError(
                f"gcp: Cloud Run refused to route traffic to {to.id}: "
                f"{error.get('message', 'no reason given')}"
            )
        return Release(
            id=to.id, version=to.version, ref=to.ref, status="routing",
            created_at=to.created_at,
            extra={**to.extra, "operation": str((operation or {}).get("name", ""))},
        )  # fmt: skip

    @property
    def logging_url(self) -> str:
        return str(self.target.settings.get("logging_url") or DEFAULT_LOGGING_URL).rstrip("/")

    def log_filter(self, revision: str, since: dt.datetime) -> str:
        """The Cloud Logging filter of the serving revision's entries since ``since``."""
        s = self.target.settings
        stamp = since.isoformat(timespec="seconds").replace("+00:00", "Z")
        return (
            f'resource.type="{RESOURCE_TYPE}" AND resource.labels.service_name="{s["service"]}" '
            f'AND resource.labels.revision_name="{revision}" AND timestamp>="{stamp}"'
        )

    def logs(self, limit: int = 200) -> list[str]:
        """The serving revision's entries of the last :data:`LOG_WINDOW_S` seconds, through
        Cloud Logging's ``POST /v2/entries:list`` (newest first, one page of at most
        :data:`LOG_PAGE_MAX`), oldest first. The access token needs ``logging.logEntries.list``
        (roles/logging.viewer)."""
        revision = self.current().id
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=LOG_WINDOW_S)
        body = self._request(
            "POST", f"{self.logging_url}/v2/entries:list",
            json={
                "resourceNames": [f"projects/{self.target.settings['project']}"],
                "filter": self.log_filter(revision, since),
                "orderBy": "timestamp desc",
                "pageSize": max(1, min(limit, LOG_PAGE_MAX)),
            },
            what=f"reading the log entries of revision {revision}", idempotent=True,
        )  # fmt: skip
        body = {} if body is None else body  # no entries: Cloud Logging answers {}
        entries = body.get("entries", []) if isinstance(body, Mapping) else None
        if not isinstance(entries, list):
            raise DriverError(
                f"gcp: Cloud Logging answered without an entries list; check logging_url "
                f"{self.logging_url!r}"
            )
        lines = [
            log_line(entry.get("timestamp"), _entry_text(entry))
            for entry in reversed(entries)
            if isinstance(entry, Mapping)
        ]
        return lines[-limit:] if limit else []

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        def serving() -> bool:
            service = self._service()
            if _ready_state(service) == FAILED:
                terminal = service.get("terminalCondition") or {}
                raise DriverError(
                    f"gcp: {self._service_name} is not ready after the traffic change: "
                    f"{terminal.get('message') or 'see the service in the Cloud console'}"
                )
            return not service.get("reconciling") and serving_revision(service) == release.id

        return self._wait(serving, timeout_s)
