"""A stand-in of Render's REST API (v1): deploys of one service, and its rollback endpoint.

Follows https://api-docs.render.com: ``GET /v1/services/{id}/deploys`` answers a list of
``{"deploy": {...}, "cursor": ...}``; ``GET /v1/services/{id}/deploys/{deployId}`` one deploy;
``POST /v1/services/{id}/rollback`` with ``{"deployId": ...}`` answers 201 and the new deploy,
which goes ``update_in_progress`` -> ``live`` (the old live one becomes ``deactivated``).
``GET /v1/services/{id}`` answers the service (with its ``ownerId``); ``GET /v1/logs`` the
owner's log lines filtered by ``resource`` and time (``{"hasMore", "nextStartTime",
"nextEndTime", "logs": [{"id", "labels", "message", "timestamp"}]}``).
Errors are ``{"id": ..., "message": ...}``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

from tests.standins._base import StandIn

API_URL = "https://api.render.test/v1"
OWNER = "tea-la0000owner"
LOG_NOW = int(time.time())
IN_PROGRESS = {
    "created",
    "queued",
    "build_in_progress",
    "update_in_progress",
    "pre_deploy_in_progress",
}


def deploy(n: int, status: str, *, image: str | None = None) -> dict[str, Any]:
    return {
        "id": f"dep-{n:04d}",
        "commit": {"id": f"{n:02d}" + "c0ffee" * 6, "message": f"release {n}\nbody"},
        "image": {"ref": image or f"registry.test/la:1.{n}", "sha": f"sha256:{n:064d}"},
        "status": status,
        "trigger": "api",
        "createdAt": f"2026-01-{n:02d}T10:00:00Z",
        "updatedAt": f"2026-01-{n:02d}T10:05:00Z",
        "finishedAt": f"2026-01-{n:02d}T10:05:00Z",
    }


class RenderStandIn(StandIn):
    """One Render service with its deploy history (newest first)."""

    def __init__(self, token: str, service_id: str, *, polls_until_live: int = 1) -> None:
        super().__init__(token)
        self.service_id = service_id
        self.polls_until_live = polls_until_live
        self.deploys: list[dict[str, Any]] = [
            deploy(4, "live"),
            deploy(3, "build_failed"),
            deploy(2, "deactivated"),
            deploy(1, "deactivated"),
        ]
        self._countdown: dict[str, int] = {}
        self.log_entries: list[dict[str, Any]] = []
        now = int(time.time())
        self.add_log(now - 7200, "an hour before the window")
        for back, message in ((30, "listening on :10000"), (10, "GET /api/health 200")):
            self.add_log(now - back, message)
        base = r"/v1/services/(?P<sid>[^/]+)"
        self.route("GET", base)(self._service_get)
        self.route("GET", r"/v1/logs")(self._logs)
        self.route("GET", base + "/deploys")(self._list)
        self.route("GET", base + r"/deploys/(?P<did>[^/]+)")(self._get)
        self.route("POST", base + "/rollback")(self._rollback)

    def error(self, status: int, message: str) -> httpx.Response:
        return httpx.Response(status, json={"id": f"stand-in-{status}", "message": message})

    @property
    def serving(self) -> str:
        """The image of the live deploy."""
        return next(d["image"]["ref"] for d in self.deploys if d["status"] == "live")

    def _find(self, deploy_id: str) -> dict[str, Any] | None:
        return next((d for d in self.deploys if d["id"] == deploy_id), None)

    def _service(self, match: Any) -> httpx.Response | None:
        if match["sid"] != self.service_id:
            return self.error(404, "service not found")
        return None

    def _service_get(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if missing := self._service(match):
            return missing
        return httpx.Response(
            200, json={"id": self.service_id, "name": "learning-assistant", "ownerId": OWNER,
                       "type": "web_service", "suspended": "not_suspended"},
        )  # fmt: skip

    def _logs(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        """``GET /v1/logs``: ownerId and resource required; startTime/endTime in Unix seconds
        (default: the last hour); direction backward = newest first; limit 1-100."""
        params = request.url.params
        if params.get("ownerId") != OWNER:
            return self.error(403, "you do not have access to this owner's logs")
        if params.get_list("resource") != [self.service_id]:
            return self.error(400, "resource must name resources of this owner")
        limit = int(params.get("limit", 20))
        if not 1 <= limit <= 100:
            return self.error(400, "limit must be between 1 and 100")
        try:
            start = int(params.get("startTime", LOG_NOW - 3600))
            end = int(params.get("endTime", LOG_NOW))
        except ValueError:
            return self.error(400, "startTime and endTime are Unix timestamps")
        found = [e for e in self.log_entries if start <= e["epoch"] <= end]
        newest_first = params.get("direction", "backward") == "backward"
        found.sort(key=lambda e: e["epoch"], reverse=newest_first)
        page = found[:limit]
        return httpx.Response(200, json={
            "hasMore": len(found) > limit, "nextStartTime": start, "nextEndTime": end,
            "logs": [{k: v for k, v in e.items() if k != "epoch"} for e in page],
        })  # fmt: skip

    def add_log(self, epoch: int, message: str) -> None:
        stamp = dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")
        self.log_entries.append({
            "id": f"log-{len(self.log_entries)}", "epoch": epoch, "timestamp": stamp,
            "message": message,
            "labels": [{"name": "resource", "value": self.service_id},
                       {"name": "type", "value": "app"}, {"name": "level", "value": "info"}],
        })  # fmt: skip

    def _list(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if missing := self._service(match):
            return missing
        limit = int(request.url.params.get("limit", 20))
        if not 1 <= limit <= 100:
            return self.error(400, "limit must be between 1 and 100")
        page = self.deploys[:limit]
        return httpx.Response(200, json=[{"deploy": d, "cursor": f"cur-{d['id']}"} for d in page])

    def _get(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if missing := self._service(match):
            return missing
        found = self._find(match["did"])
        if found is None:
            return self.error(404, "deploy not found")
        if found["status"] == "update_in_progress":
            self._countdown[found["id"]] -= 1
            if self._countdown[found["id"]] <= 0:
                for other in self.deploys:
                    if other["status"] == "live":
                        other["status"] = "deactivated"
                found["status"] = "live"
        return httpx.Response(200, json=found)

    def _rollback(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if missing := self._service(match):
            return missing
        if "application/json" not in request.headers.get("Content-Type", ""):
            return self.error(400, "expected a JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("deployId"), str):
            return self.error(400, "deployId is required")
        target = self._find(body["deployId"])
        if target is None:
            return self.error(404, "deploy not found")
        if target["status"] not in ("live", "deactivated"):
            return self.error(400, "can only roll back to a deploy that was live")
        if any(d["status"] in IN_PROGRESS for d in self.deploys):
            return self.error(409, "a deploy is already in progress")
        n = len(self.deploys) + 1
        new = {
            **deploy(n, "update_in_progress", image=target["image"]["ref"]),
            "commit": target["commit"],
            "trigger": "rollback",
        }
        self.deploys.insert(0, new)
        self._countdown[new["id"]] = self.polls_until_live
        return httpx.Response(201, json=new)
