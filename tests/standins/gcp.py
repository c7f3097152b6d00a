"""A stand-in of the Cloud Run Admin API v2: one service, its revisions and its traffic.

Follows https://cloud.google.com/run/docs/reference/rest/v2: ``GET`` the service and its
``/revisions``; ``PATCH`` the service (here only ``updateMask=traffic`` is accepted) answers a
long-running ``Operation``; while it runs the service is ``reconciling``, then
``trafficStatuses`` shows the new split. Errors are ``{"error": {"code", "message", "status"}}``.
Cloud Logging's ``POST /v2/entries:list`` (https://cloud.google.com/logging/docs/reference/v2/
rest/v2/entries/list) answers ``{"entries": [LogEntry...], "nextPageToken"}``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from tests.standins._base import StandIn

API_URL = "https://run.googleapis.test"
PROJECT, REGION, SERVICE = "la-prod", "us-central1", "learning-assistant"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
SERVICE_NAME = f"{PARENT}/services/{SERVICE}"
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
BY_REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


def revision(n: int, ready: bool = True) -> dict[str, Any]:
    return {
        "name": f"{SERVICE_NAME}/revisions/{SERVICE}-{n:05d}-abc",
        "createTime": f"2026-03-{n:02d}T08:00:00.000000Z",
        "containers": [{"image": f"us-docker.pkg.test/la/app:1.{n}"}],
        "conditions": [
            {"type": "Ready", "state": "CONDITION_SUCCEEDED" if ready else "CONDITION_FAILED"}
        ],
    }


def log_entry(revision_name: str, when: dt.datetime, **payload: Any) -> dict[str, Any]:
    """A Cloud Logging LogEntry of a Cloud Run revision."""
    return {
        "logName": f"projects/{PROJECT}/logs/run.googleapis.com%2Fstdout",
        "resource": {"type": "cloud_run_revision", "labels": {
            "project_id": PROJECT, "location": REGION, "service_name": SERVICE,
            "revision_name": revision_name, "configuration_name": SERVICE}},
        "timestamp": when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "severity": "INFO", "insertId": f"{when.timestamp():.6f}",
        **payload,
    }  # fmt: skip


def short(n: int) -> str:
    return f"{SERVICE}-{n:05d}-abc"


class CloudRunStandIn(StandIn):
    def __init__(self, token: str, *, polls_until_done: int = 1) -> None:
        super().__init__(token)
        self.polls_until_done = polls_until_done
        self.revisions = [revision(4), revision(3, ready=False), revision(2), revision(1)]
        self.service: dict[str, Any] = {
            "name": SERVICE_NAME,
            "latestReadyRevision": self.revisions[0]["name"],
            "latestCreatedRevision": self.revisions[0]["name"],
            "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
            "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
            "reconciling": False,
            "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED"},
        }
        self._countdown = 0
        self._operations = 0
        self.route("GET", f"/v2/{SERVICE_NAME}")(self._get)
        self.route("PATCH", f"/v2/{SERVICE_NAME}")(self._patch)
        self.route("GET", f"/v2/{SERVICE_NAME}/revisions")(self._revisions)
        self.route("GET", f"/v2/{PARENT}/services/[^/]+(/revisions)?")(self._unknown)
        self.route("POST", "/v2/entries:list")(self._entries)
        now = dt.datetime.now(dt.UTC)
        self.log_entries: list[dict[str, Any]] = [
            log_entry(short(4), now - dt.timedelta(hours=2), textPayload="before the window"),
            log_entry(short(3), now - dt.timedelta(seconds=40), textPayload="other revision"),
            log_entry(short(4), now - dt.timedelta(seconds=30), textPayload="listening on 8080"),
            log_entry(short(4), now - dt.timedelta(seconds=20),
                      jsonPayload={"message": "request", "request_id": "pd-123"}),
            log_entry(short(4), now - dt.timedelta(seconds=10), httpRequest={
                "requestMethod": "GET", "requestUrl": "https://la.test/api/health",
                "status": 200}),
        ]  # fmt: skip

    def error(self, status: int, message: str) -> httpx.Response:
        return httpx.Response(status, json={"error": {
            "code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }})  # fmt: skip

    def unauthorized(self) -> httpx.Response:
        return self.error(401, "Request had invalid authentication credentials.")

    @property
    def serving(self) -> str | None:
        """The revision with 100 % of the traffic (short name)."""
        for status in self.service["trafficStatuses"]:
            if status.get("percent") == 100:
                name = status.get("revision") or self.service["latestReadyRevision"]
                return str(name).rsplit("/", 1)[-1]
        return None

    def _entries(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        """Cloud Logging ``entries:list``: ``resourceNames`` required; this stand-in reads the
        filter's ``revision_name`` and ``timestamp>=`` terms; ``orderBy`` ``timestamp desc``
        or (default) asc; ``pageSize`` at most 1000; ``{}`` when nothing matches."""
        if not isinstance(body, dict) or body.get("resourceNames") != [f"projects/{PROJECT}"]:
            return self.error(400, "resourceNames must name the project")
        size = int(body.get("pageSize") or 50)
        if not 1 <= size <= 1000:
            return self.error(400, "pageSize must be between 1 and 1000")
        where = str(body.get("filter", ""))
        revision = re.search(r'resource\.labels\.revision_name="([^"]+)"', where)
        since = re.search(r'timestamp>="([^"]+)"', where)
        if 'resource.type="cloud_run_revision"' not in where or not revision or not since:
            return self.error(400, "this stand-in expects a revision and a timestamp filter")
        found = [
            e for e in self.log_entries
            if e["resource"]["labels"]["revision_name"] == revision[1]
            and e["timestamp"] >= since[1]
        ]  # fmt: skip
        found.sort(key=lambda e: e["timestamp"], reverse=body.get("orderBy") == "timestamp desc")
        return httpx.Response(200, json={"entries": found[:size]} if found else {})

    def _unknown(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        return self.error(404, f"Resource '{request.url.path[4:]}' was not found")

    def _get(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if self.service["reconciling"]:
            self._countdown -= 1
            if self._countdown <= 0:
                self.service["reconciling"] = False
                self.service["trafficStatuses"] = [dict(t) for t in self.service["traffic"]]
        return httpx.Response(200, json=self.service)

    def _revisions(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        return httpx.Response(200, json={"revisions": self.revisions})

    def _patch(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if request.url.params.get("updateMask") != "traffic":
            return self.error(400, "this stand-in only updates traffic (updateMask=traffic)")
        if self.service["reconciling"]:
            return self.error(409, "Conflict for resource: another operation is in progress")
        traffic = (body or {}).get("traffic")
        if not isinstance(traffic, list) or sum(t.get("percent", 0) for t in traffic) != 100:
            return self.error(400, "traffic percents must add up to 100")
        names = {r["name"].rsplit("/", 1)[-1]: r for r in self.revisions}
        for target in traffic:
            if target.get("type") != BY_REVISION or target.get("revision") not in names:
                return self.error(400, f"Revision {target.get('revision')!r} does not exist")
            if names[target["revision"]]["conditions"][0]["state"] != "CONDITION_SUCCEEDED":
                return self.error(400, f"Revision {target['revision']} is not ready")
        self.service["traffic"] = traffic
        self.service["reconciling"] = True
        self._countdown = self.polls_until_done
        self._operations += 1
        return httpx.Response(200, json={
            "name": f"{PARENT}/operations/op-{self._operations}",
            "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"},
            "done": False,
        })  # fmt: skip
