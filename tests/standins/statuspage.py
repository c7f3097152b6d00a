"""A stand-in of Atlassian Statuspage's incidents API (the documented v1 REST API), on 127.0.0.1.

Only what postdeploy uses: ``POST /v1/pages/{page_id}/incidents`` (201, the incident with its
``id``) and ``PATCH /v1/pages/{page_id}/incidents/{incident_id}`` (200), both authenticated
with ``Authorization: OAuth <api key>`` (401 otherwise, 404 for an unknown page or incident),
bodies ``{"incident": {...}}``. It keeps the incidents with their updates and the components'
statuses, as the real page would show them. Tests can make it answer an error instead.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INCIDENTS = re.compile(
    r"^/v1/pages/(?P<page>[^/]+)/incidents(?:/(?P<incident>[^/.]+))?(?:\.json)?$"
)
POLL_S = 0.01
STATUSES = ("investigating", "identified", "monitoring", "resolved")


@dataclass
class Incident:
    id: str
    name: str
    status: str
    components: dict[str, str]
    updates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "components": [{"id": k, "status": v} for k, v in self.components.items()],
            "incident_updates": self.updates,
        }


class StatuspageStandin:
    def __init__(self, page_id: str, api_key: str) -> None:
        self.page_id = page_id
        self.api_key = api_key
        self.incidents: dict[str, Incident] = {}
        self.component_status: dict[str, str] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.fail_with: int | None = None
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return self._answer(400, {"error": "body is not JSON"})
                standin.requests.append((method, self.path, body))
                if standin.fail_with:
                    return self._answer(standin.fail_with, {"error": "stand-in told to fail"})
                if self.headers.get("Authorization") != f"OAuth {standin.api_key}":
                    return self._answer(401, {"error": "Could not authenticate"})
                match = INCIDENTS.match(self.path)
                if not match or match["page"] != standin.page_id:
                    return self._answer(404, {"error": "Not found"})
                incident = body.get("incident")
                if not isinstance(incident, dict):
                    return self._answer(422, {"error": "incident is missing"})
                if method == "POST" and not match["incident"]:
                    return self._answer(201, standin._create(incident).to_dict())
                if method == "PATCH" and match["incident"] in standin.incidents:
                    return self._answer(200, standin._update(match["incident"], incident))
                return self._answer(404, {"error": "Not found"})

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )

    def _components(self, incident: dict[str, Any]) -> dict[str, str]:
        components = dict(incident.get("components") or {})
        for component in incident.get("component_ids") or []:
            components.setdefault(component, "major_outage")
        self.component_status.update(components)
        return components

    def _create(self, data: dict[str, Any]) -> Incident:
        status = data.get("status", "investigating")
        incident = Incident(
            id=secrets.token_hex(6), name=str(data.get("name", "")), status=status,
            components=self._components(data),
        )  # fmt: skip
        incident.updates.append({"status": status, "body": data.get("body", "")})
        self.incidents[incident.id] = incident
        return incident

    def _update(self, incident_id: str, data: dict[str, Any]) -> dict[str, Any]:
        incident = self.incidents[incident_id]
        incident.status = data.get("status", incident.status)
        incident.components.update(self._components(data))
        incident.updates.append({"status": incident.status, "body": data.get("body", "")})
        return incident.to_dict()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> StatuspageStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
