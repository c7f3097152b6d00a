"""Rollback driver for Render, through its public REST API (``api_url``, default v1).

- releases: ``GET /services/{serviceId}/deploys`` - a list of ``{"deploy": {...}, "cursor"}``
- current:  the deploy whose status is ``live``
- rollback: ``POST /services/{serviceId}/rollback`` with ``{"deployId": ...}`` - Render starts a
  new deploy from that deploy's build artifact and answers with it (201)
- wait:     ``GET /services/{serviceId}/deploys/{deployId}`` until its status is ``live``
- logs:     ``GET /logs?ownerId=...&resource={serviceId}&startTime&endTime&direction=backward``

Render's rollback endpoint does **not** turn off auto-deploy: the next push to the service's
branch deploys again, possibly the change that was rolled back. Turn auto-deploy off
(``autoDeploy: false`` via the Update service endpoint or the dashboard) until it is fixed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from postdeploy.rollback._http import RestDriver
from postdeploy.rollback.base import LOG_WINDOW_S, Call, DriverError, Release, log_line

#: How many deploys to read (the API's page size is 1-100).
DEPLOYS_LIMIT = 20
#: The most log lines one ``GET /logs`` answers.
LOGS_PAGE_MAX = 100
LIVE = "live"
#: Statuses of deploys that once went live: the ones Render can roll back to.
ONCE_LIVE = frozenset({"live", "deactivated"})
FAILED = frozenset({"build_failed", "update_failed", "canceled", "pre_deploy_failed"})


def _release(deploy: Mapping[str, Any]) -> Release:
    commit = deploy.get("commit") or {}
    image = deploy.get("image") or {}
    status = str(deploy.get("status", ""))
    commit_id = str(commit.get("id") or "")
    return Release(
        id=str(deploy.get("id", "")),
        version=commit_id[:12] or str(image.get("sha") or "")[:19],
        ref=str(image.get("ref") or commit_id),
        status=status,
        created_at=str(deploy.get("createdAt") or ""),
        can_rollback=status in ONCE_LIVE,
        extra={
            key: value
            for key, value in (
                ("trigger", deploy.get("trigger")),
                ("finished_at", deploy.get("finishedAt")),
                ("commit_message", str(commit.get("message") or "").split("\n")[0][:120]),
            )
            if value
        },
    )


class RenderDriver(RestDriver):
    platform = "render"

    def not_found_hint(self) -> str:
        return (
            f"Render knows no service {self.service_id!r} (or no such deploy) for this API key; "
            "check service_id (srv-...) in targets.toml"
        )

    @property
    def service_id(self) -> str:
        return str(self.target.setting("service_id"))

    @property
    def _service_path(self) -> str:
        return f"/services/{self.service_id}"

    def releases(self) -> Sequence[Release]:
        body = self._request(
            "GET", f"{self._service_path}/deploys", params={"limit": DEPLOYS_LIMIT},
            what=f"listing the deploys of service {self.service_id}",
        )  # fmt: skip
        if not isinstance(body, list):
            raise DriverError(
                f"render: the deploy list of {self.service_id} is not a JSON list; "
                f"is api_url {self.api_url!r} Render's API (https://api.render.com/v1)?"
            )
        deploys = [_release(item.get("deploy") or {}) for item in body if isinstance(item, Mapping)]
        return sorted(deploys, key=lambda r: r.created_at, reverse=True)

    def current(self) -> Release:
        for release in self.releases():
            if release.status == LIVE:
                return release
        raise DriverError(
            f"render: service {self.service_id} has no live deploy among its last "
            f"{DEPLOYS_LIMIT}; look at its Events page in the Render dashboard"
        )

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f'POST {self.api_url}{self._service_path}/rollback {{"deployId": "{to.id}"}} '
                f"{self._bearer_note()}"
            ),
            Call(
                f"GET {self.api_url}{self._service_path}/deploys/<new deploy id> every "
                f"{self.poll_interval_s:g} s until its status is live"
            ),
        ]

    def rollback(self, to: Release) -> Release:
        if not to.can_rollback:
            raise DriverError(
                f"render: deploy {to.id} never went live (status {to.status or 'unknown'}); "
                "Render rolls back only to a deploy that was live - pick another one"
            )
        body = self._request(
            "POST", f"{self._service_path}/rollback", json={"deployId": to.id},
            what=f"rolling service {self.service_id} back to deploy {to.id}",
        )  # fmt: skip
        if not isinstance(body, Mapping) or not body.get("id"):
            raise DriverError(
                f"render: the rollback of {self.service_id} to {to.id} was accepted but the "
                "answer names no new deploy; check the service's Events page"
            )
        return _release(body)

    def owner_id(self) -> str:
        """The workspace the service belongs to: ``owner_id`` in targets.toml, else the
        service's own ``ownerId`` (``GET /services/{serviceId}``)."""
        configured = str(self.target.settings.get("owner_id") or "")
        if configured:
            return configured
        body = self._request("GET", self._service_path, what=f"reading service {self.service_id}")
        owner = body.get("ownerId") if isinstance(body, Mapping) else None
        if not owner:
            raise DriverError(
                f"render: service {self.service_id} came back without an ownerId; set owner_id "
                "(the workspace id, tea-...) in targets.toml"
            )
        return str(owner)

    def logs(self, limit: int = 200) -> list[str]:
        """The service's log lines of the last :data:`LOG_WINDOW_S` seconds (``GET /logs``
        with ``ownerId`` and ``resource`` = the service, newest first, one page of at most
        :data:`LOGS_PAGE_MAX`), oldest first."""
        now = int(time.time())
        body = self._request(
            "GET", "/logs",
            params={
                "ownerId": self.owner_id(), "resource": self.service_id,
                "startTime": str(now - LOG_WINDOW_S), "endTime": str(now),
                "direction": "backward", "limit": max(1, min(limit, LOGS_PAGE_MAX)),
            },
            what=f"reading the logs of service {self.service_id}",
        )  # fmt: skip
        entries = body.get("logs") if isinstance(body, Mapping) else None
        if not isinstance(entries, list):
            raise DriverError(
                f"render: the logs of {self.service_id} came back without a logs list; is "
                f"api_url {self.api_url!r} Render's API (https://api.render.com/v1)?"
            )
        lines = [
            log_line(entry.get("timestamp"), entry.get("message"))
            for entry in reversed(entries)
            if isinstance(entry, Mapping)
        ]
        return lines[-limit:] if limit else []

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        def live() -> bool:
            body = self._request(
                "GET", f"{self._service_path}/deploys/{release.id}",
                what=f"reading deploy {release.id} of service {self.service_id}",
            )  # fmt: skip
            status = str((body or {}).get("status", ""))
            if status in FAILED:
                raise DriverError(
                    f"render: rollback deploy {release.id} of {self.service_id} ended with "
                    f"status {status}; see its logs in the Render dashboard"
                )
            return status == LIVE

        return self._wait(live, timeout_s)
