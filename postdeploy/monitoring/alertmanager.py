"""Alertmanager's API v2: which alerts are active, as the people on call would see them.

Only what the "no critical alert is firing" check needs: ``GET /api/v2/status`` (is this an
Alertmanager?) and ``GET /api/v2/alerts`` (active, not silenced, not inhibited). Every call has
a bounded timeout. An Alertmanager that cannot be asked is trouble of a system the harness
asks, not of the target: :class:`AlertmanagerUnavailable` is a
:class:`~postdeploy.gate.BackendError`, so the check is broken, never failed.
"""

from __future__ import annotations

from typing import Any

import httpx

from postdeploy.gate import UNPARSEABLE, BackendError, http_failure, transport_failure

SYSTEM = "Alertmanager"
#: Characters of an error body quoted in a message.
QUOTE_CHARS = 300
ACTIVE_ALERTS = {"active": "true", "silenced": "false", "inhibited": "false"}


class AlertmanagerUnavailable(BackendError):
    """The Alertmanager did not answer, or not as Alertmanager's API v2 does."""

    def __init__(self, message: str, how: str) -> None:
        super().__init__(message, system=SYSTEM, how=how)


class AlertmanagerAPI:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout_s))

    def close(self) -> None:
        self._client.close()

    def describe(self, path: str) -> str:
        return f"Alertmanager at {self.url}: GET {path}"

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        where = self.describe(path)
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise AlertmanagerUnavailable(
                f"{where}: unreachable ({type(exc).__name__}); check monitoring.alertmanager_url "
                "and that the Alertmanager is up",
                transport_failure(exc),
            ) from None
        if response.status_code != 200:
            raise AlertmanagerUnavailable(
                f"{where} answered HTTP {response.status_code}: {response.text[:QUOTE_CHARS]}",
                http_failure(response.status_code),
            )
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerUnavailable(
                f"{where} answered something that is not JSON; is monitoring.alertmanager_url an "
                "Alertmanager?",
                UNPARSEABLE,
            ) from None

    def status(self) -> dict[str, Any]:
        body = self._get("/api/v2/status")
        if not isinstance(body, dict) or "versionInfo" not in body:
            raise AlertmanagerUnavailable(
                f"{self.describe('/api/v2/status')} did not answer like Alertmanager's API v2",
                UNPARSEABLE,
            )
        return body

    def active_alerts(self) -> list[dict[str, Any]]:
        """Alerts that are active and neither silenced nor inhibited."""
        body = self._get("/api/v2/alerts", ACTIVE_ALERTS)
        if not isinstance(body, list):
            raise AlertmanagerUnavailable(
                f"{self.describe('/api/v2/alerts')} answered a {type(body).__name__}, not a list",
                UNPARSEABLE,
            )
        return [alert for alert in body if isinstance(alert, dict)]
