"""A stand-in of Fly.io's Machines API: the machines of one app.

Follows https://fly.io/docs/machines/api/machines-resource/: ``GET /v1/apps/{app}/machines``
answers a JSON list of machines (``id``, ``name``, ``state``, ``region``, ``image_ref``,
``config.metadata`` with ``fly_release_version`` and ``fly_process_group``); errors are
``{"error": "..."}``. A request reaches one machine through the app's URL with the
``fly-force-instance-id`` header (https://fly.io/docs/networking/dynamic-request-routing/).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.standins._base import StandIn

API_URL = "https://machines.fly.test"


def machine(
    machine_id: str, *, state: str = "started", release: int = 4, group: str = "app"
) -> dict[str, Any]:
    return {
        "id": machine_id,
        "name": f"name-{machine_id}",
        "state": state,
        "region": "ams",
        "instance_id": f"01H{machine_id.upper()}",
        "private_ip": "fdaa:0:1::2",
        "image_ref": {
            "registry": "registry.fly.io",
            "repository": "learning-assistant",
            "tag": f"deployment-{release:02d}",
            "digest": "sha256:" + "0" * 64,
        },
        "config": {
            "image": f"registry.fly.io/learning-assistant:deployment-{release:02d}",
            "metadata": {
                "fly_release_version": str(release),
                "fly_process_group": group,
                "fly_platform_version": "v2",
            },
        },
        "created_at": "2026-05-04T12:00:00Z",
        "updated_at": "2026-05-04T12:01:00Z",
    }


class FlyMachinesStandIn(StandIn):
    """One Fly app's machines."""

    def __init__(self, token: str, app: str, machines: list[dict[str, Any]]) -> None:
        super().__init__(token)
        self.app = app
        self.machines = machines

        @self.route("GET", r"/v1/apps/(?P<app>[^/]+)/machines")
        def list_machines(request: httpx.Request, match: Any, body: Any) -> httpx.Response:
            if match["app"] != self.app:
                return self.error(404, "app not found")
            return httpx.Response(200, json=self.machines)

    def error(self, status: int, message: str) -> httpx.Response:
        return httpx.Response(status, json={"error": message})
