"""A stand-in of Azure Resource Manager for one App Service app with a staging slot.

Follows the Web Apps REST API: every request needs ``api-version``; ``GET`` the site or a
slot, and its ``/config/web`` (``linuxFxVersion``); ``POST .../slots/{slot}/slotsswap`` with a
``CsmSlotEntity`` (``targetSlot``, ``preserveVnet``) answers 202 Accepted with a ``Location``
to poll (202 while running, 200 when done). Errors are ``{"error": {"code", "message"}}``.

:class:`LogAnalyticsStandIn` is the Log Analytics query API (``POST /v1/workspaces/{id}/query``
with ``{"query", "timespan"}``; answers ``{"tables": [{"name": "PrimaryResult", "columns":
[{"name", "type"}], "rows": [[...]]}]}``), with a token of its own.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from tests.standins._base import StandIn

API_URL = "https://management.azure.test"
SUB, RG, APP, SLOT = "0000-sub", "la-rg", "learning-assistant", "staging"
SITE = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Web/sites/{APP}"


class AppServiceStandIn(StandIn):
    def __init__(
        self,
        token: str,
        *,
        polls_until_done: int = 1,
        location_host: str = "",
    ) -> None:
        super().__init__(token)
        self.polls_until_done = polls_until_done
        self.location_host = location_host or API_URL
        self.fx = {"production": "DOCKER|acr.test/la:2.0", SLOT: "DOCKER|acr.test/la:1.9"}
        self.state = {"production": "Running", SLOT: "Running"}
        self._swaps: dict[str, int] = {}
        self.route("GET", SITE)(self._site)
        self.route("GET", SITE + "/config/web")(self._config)
        self.route("GET", SITE + r"/slots/(?P<slot>[^/]+)")(self._site)
        self.route("GET", SITE + r"/slots/(?P<slot>[^/]+)/config/web")(self._config)
        self.route("POST", SITE + r"/slots/(?P<slot>[^/]+)/slotsswap")(self._swap)
        self.route("GET", SITE + r"/operationresults/(?P<op>[^/]+)")(self._operation)

    def error(self, status: int, message: str) -> httpx.Response:
        codes = {401: "InvalidAuthenticationToken", 403: "AuthorizationFailed",
                 404: "ResourceNotFound", 409: "Conflict"}  # fmt: skip
        return httpx.Response(
            status, json={"error": {"code": codes.get(status, "Error"), "message": message}}
        )

    def unauthorized(self) -> httpx.Response:
        return self.error(401, "The access token is invalid.")

    @property
    def serving(self) -> str:
        return self.fx["production"]

    def handle(self, request: httpx.Request) -> httpx.Response:
        if "api-version" not in request.url.params and request.url.path.startswith("/sub"):
            return httpx.Response(400, json={"error": {
                "code": "MissingApiVersionParameter",
                "message": "The api-version query parameter (?api-version=) is required.",
            }})  # fmt: skip
        return super().handle(request)

    def _slot(self, match: Any) -> str:
        return match.groupdict().get("slot") or "production"

    def _site(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        slot = self._slot(match)
        if slot not in self.fx:
            return self.error(404, f"The Resource '{slot}' was not found.")
        return httpx.Response(200, json={
            "name": APP if slot == "production" else f"{APP}/{slot}",
            "properties": {"state": self.state[slot], "lastModifiedTimeUtc": "2026-04-01T10:00:00"},
        })  # fmt: skip

    def _config(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        slot = self._slot(match)
        if slot not in self.fx:
            return self.error(404, f"The Resource '{slot}' was not found.")
        return httpx.Response(
            200, json={"name": "web", "properties": {"linuxFxVersion": self.fx[slot]}}
        )

    def _swap(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        slot = self._slot(match)
        if slot not in self.fx:
            return self.error(404, f"The Resource '{slot}' was not found.")
        if (
            not isinstance(body, dict)
            or body.get("targetSlot") != "production"
            or (not isinstance(body.get("preserveVnet"), bool))
        ):
            return self.error(400, "targetSlot and preserveVnet are required")
        if self._swaps:
            return self.error(
                409, "Cannot modify this site because another operation is in progress."
            )
        op = f"swap-{len(self.seen)}"
        self._swaps[op] = self.polls_until_done
        location = f"{self.location_host}{SITE}/operationresults/{op}?api-version=2023-12-01"
        return httpx.Response(202, headers={"Location": location, "Retry-After": "1"})

    def _operation(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        op = match["op"]
        if op not in self._swaps:
            return self.error(404, "operation not found")
        self._swaps[op] -= 1
        if self._swaps[op] > 0:
            return httpx.Response(202)
        del self._swaps[op]
        self.fx["production"], self.fx[SLOT] = self.fx[SLOT], self.fx["production"]
        return httpx.Response(200)


LOG_ANALYTICS_URL = "https://api.loganalytics.test"
WORKSPACE = "11111111-2222-3333-4444-555555555555"


class LogAnalyticsStandIn(StandIn):
    """One workspace holding the app's AppServiceConsoleLogs rows."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        now = dt.datetime.now(dt.UTC)
        self.rows: list[tuple[dt.datetime, str, str]] = [
            (now - dt.timedelta(hours=2), SITE, "before the window"),
            (now - dt.timedelta(seconds=30), SITE, "listening on 8000"),
            (now - dt.timedelta(seconds=20), SITE + "/slots/staging", "the staging slot"),
            (now - dt.timedelta(seconds=10), SITE, "GET /api/health 200"),
        ]
        self.route("POST", r"/v1/workspaces/(?P<ws>[^/]+)/query")(self._query)

    def error(self, status: int, message: str) -> httpx.Response:
        error = {"code": "BadArgumentError", "message": message}
        return httpx.Response(status, json={"error": error})

    def _query(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if match["ws"] != WORKSPACE:
            return self.error(404, "Workspace not found")
        query = str((body or {}).get("query", ""))
        resource = re.search(r'_ResourceId =~ "([^"]+)"', query)
        ago = re.search(r"ago\((\d+)s\)", query)
        take = re.search(r"take (\d+)", query)
        if not query.startswith("AppServiceConsoleLogs") or not (resource and ago and take):
            return self.error(400, "this stand-in expects a resource, ago() and take filter")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(ago[1]))
        found = sorted(
            (r for r in self.rows if r[1].lower() == resource[1].lower() and r[0] > since),
            reverse="order by TimeGenerated desc" in query,
        )[: int(take[1])]
        return httpx.Response(200, json={"tables": [{
            "name": "PrimaryResult",
            "columns": [{"name": "TimeGenerated", "type": "datetime"},
                        {"name": "ResultDescription", "type": "string"}],
            "rows": [[r[0].isoformat().replace("+00:00", "Z"), r[2]] for r in found],
        }]})  # fmt: skip
