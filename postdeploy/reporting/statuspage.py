"""Atlassian Statuspage: open an incident on a Sev 1, update it, resolve it on verified recovery.

The documented REST API (``https://api.statuspage.io/v1``, header ``Authorization: OAuth
KEY``): ``POST /pages/{page_id}/incidents`` with ``{"incident": {name, status, body,
component_ids, components: {id: major_outage}}}`` opens one and answers its ``id``;
``PATCH /pages/{page_id}/incidents/{incident_id}`` with ``{"incident": {status, body,
components}}`` updates or resolves it (``status: resolved``, the component back to
``operational``).

The channel remembers the incident it opened for each target and release during the run, so
"initiated", "completed" and the summary are one incident. Only a Sev 1 opens one; nothing
else is published. The API key is the secret (``statuspage_api_key_env``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from postdeploy.redact import public_host, redact_text
from postdeploy.reporting.channels import (
    MAX_QUOTED_CHARS,
    USER_AGENT,
    DeliveryResult,
    Event,
    Notification,
)

STATUSPAGE_API_URL = "https://api.statuspage.io/v1"
#: Incident statuses (the API's) and component statuses used.
OPEN_STATUS = "identified"
RESOLVED_STATUS = "resolved"
COMPONENT_DOWN = "major_outage"
COMPONENT_UP = "operational"
NAME_MAX = 200
BODY_MAX = 4000


@dataclass(frozen=True)
class StatuspageChannel:
    api_key: str = field(repr=False)
    page_id: str = ""
    component_id: str = ""
    url: str = STATUSPAGE_API_URL
    name: str = "statuspage"
    #: dedup key -> the incident opened for it in this run (``None`` once resolved)
    incidents: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,)

    def wants(self, n: Notification) -> bool:
        """Only a Sev 1 opens an incident; an open one hears every later event."""
        if n.dedup_key in self.incidents:
            return self.incidents[n.dedup_key] is not None
        return n.sev == 1 and n.event != Event.COMPLETED

    def _components(self, status: str) -> dict[str, Any]:
        if not self.component_id:
            return {}
        return {"component_ids": [self.component_id], "components": {self.component_id: status}}

    def send(self, notification: Notification, client: httpx.Client) -> DeliveryResult:
        n = notification
        body = redact_text(n.text, self.secrets())[:BODY_MAX]
        incident_id = self.incidents.get(n.dedup_key)
        base = f"{self.url.rstrip('/')}/pages/{self.page_id}/incidents"
        if incident_id is None:
            payload = {
                "name": redact_text(f"{n.target}: {n.title.split(': ', 1)[-1]}")[:NAME_MAX],
                "status": OPEN_STATUS,
                "impact_override": "critical",
                "body": body,
                **self._components(COMPONENT_DOWN),
            }
            result, answer = self._request(client, "POST", base, payload, "opened")
            if result.ok:
                self.incidents[n.dedup_key] = str((answer or {}).get("id") or "")
            return result
        resolve = n.event == Event.COMPLETED
        status = RESOLVED_STATUS if resolve else OPEN_STATUS
        payload = {
            "status": status,
            "body": body,
            **self._components(COMPONENT_UP if resolve else COMPONENT_DOWN),
        }
        result, _ = self._request(
            client, "PATCH", f"{base}/{incident_id}", payload,
            "resolved" if resolve else "updated",
        )  # fmt: skip
        if result.ok and resolve:
            self.incidents[n.dedup_key] = None
        return result

    def _request(
        self, client: httpx.Client, method: str, url: str, incident: dict[str, Any], done: str
    ) -> tuple[DeliveryResult, dict[str, Any] | None]:
        host = public_host(url)
        headers = {"Authorization": f"OAuth {self.api_key}", "User-Agent": USER_AGENT}
        try:
            response = client.request(method, url, json={"incident": incident}, headers=headers)
        except httpx.TimeoutException:
            return DeliveryResult(
                self.name, False, f"statuspage: no answer from {host}", None, 1
            ), None
        except httpx.HTTPError as exc:
            return DeliveryResult(
                self.name, False, f"statuspage: could not reach {host} ({type(exc).__name__})",
                None, 1,
            ), None  # fmt: skip
        if not response.is_success:
            said = redact_text(" ".join(response.text.split())[:MAX_QUOTED_CHARS], self.secrets())
            message = f"statuspage: {host} answered {response.status_code}" + (
                f': "{said}"' if said else ""
            )
            return DeliveryResult(self.name, False, message, response.status_code, 1), None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        return DeliveryResult(
            self.name, True, f"statuspage: incident {done} on {host} ({response.status_code})",
            response.status_code, 1,
        ), answer if isinstance(answer, dict) else None  # fmt: skip
