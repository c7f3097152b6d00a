"""A stand-in of Azure Resource Manager for one App Service app with a staging slot.

Follows the Web Apps REST API: every request needs ``api-version``; ``GET`` the site or a
slot, and its ``/config/web`` (``linuxFxVersion``); ``POST .../slots/{slot}/slotsswap`` with a
``CsmSlotEntity`` (``targetSlot``, ``preserveVnet``) answers 202 Accepted with a ``Location``
to poll (202 while running, 200 when done). Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

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
