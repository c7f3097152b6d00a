"""A stand-in of Railway's public GraphQL API: deployments of one service and their rollback.

Follows https://docs.railway.com/reference/public-api: one endpoint, ``POST`` with
``{"query", "variables"}`` and a bearer token; answers ``{"data": ...}`` or, for errors,
HTTP 200 with ``{"errors": [{"message": ...}]}``. ``deploymentRollback(id)`` returns a Boolean
(the live schema), so a selection set on it is a validation error, as on Railway. A rollback
creates a new deployment (``DEPLOYING`` -> ``SUCCESS``); the one it replaces becomes
``REMOVED``.

It understands the operations by their root field, not by parsing GraphQL.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.standins._base import StandIn

API_URL = "https://backboard.railway.test/graphql/v2"
PROJECT, SERVICE, ENVIRONMENT = "proj-1", "svc-1", "env-1"


def node(n: int, status: str, *, can_rollback: bool = True) -> dict[str, Any]:
    return {
        "id": f"d{n:03d}-0000-4000-8000-00000000000{n % 10}",
        "status": status,
        "createdAt": f"2026-02-{n:02d}T09:00:00.000Z",
        "canRollback": can_rollback,
        "meta": {"image": f"ghcr.test/la@sha256:{n:064d}", "commitHash": f"{n:02d}ab" * 10},
        "staticUrl": "la-production.up.railway.test",
    }


class RailwayStandIn(StandIn):
    def __init__(self, token: str, *, polls_until_success: int = 1) -> None:
        super().__init__(token)
        self.polls_until_success = polls_until_success
        self.deployments: list[dict[str, Any]] = [
            node(5, "SUCCESS"),
            node(4, "FAILED", can_rollback=False),
            node(3, "REMOVED", can_rollback=False),
            node(2, "REMOVED"),
            node(1, "REMOVED"),
        ]
        self._countdown: dict[str, int] = {}
        self.route("POST", "/graphql/v2")(self._graphql)

    def error(self, status: int, message: str) -> httpx.Response:
        return httpx.Response(status, json={"errors": [{"message": message}]})

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(200, json={"errors": [{"message": "Not Authorized"}], "data": None})

    @property
    def serving(self) -> str:
        return next(d["meta"]["image"] for d in self.deployments if d["status"] == "SUCCESS")

    def _gql_error(self, message: str) -> httpx.Response:
        return httpx.Response(200, json={"errors": [{"message": message}], "data": None})

    def _graphql(self, request: httpx.Request, match: Any, body: Any) -> httpx.Response:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return self.error(400, "POST body must be JSON with a query")
        query, variables = body["query"], body.get("variables") or {}
        if re.search(r"deploymentRollback\([^)]*\)\s*\{", query):
            return self._gql_error(
                "Field 'deploymentRollback' must not have a selection since type 'Boolean!' "
                "has no subfields."
            )
        if "deploymentRollback(" in query:
            return self._rollback(str(variables.get("id", "")))
        if "deploymentLogs(" in query:
            return self._logs(variables)
        if "deployments(" in query:
            return self._list(variables)
        if "deployment(" in query:
            return self._one(str(variables.get("id", "")))
        return self._gql_error("Cannot query field on type 'Query'.")

    def _logs(self, variables: dict[str, Any]) -> httpx.Response:
        """``deploymentLogs(deploymentId, limit, startDate)``: ``[Log!]!`` of ``{timestamp,
        message}``, oldest first; like Railway, it may answer one line more than ``limit``."""
        if not any(d["id"] == variables.get("deploymentId") for d in self.deployments):
            return self._gql_error("Deployment not found")
        lines = [
            {"timestamp": "2026-02-05T09:00:00Z", "message": "starting"},
            {"timestamp": "2026-02-05T09:00:01Z", "message": "listening on :8080"},
            {"timestamp": "2026-02-05T09:00:02Z", "message": "GET /api/health 200"},
        ]
        limit = int(variables.get("limit") or 100)
        return httpx.Response(200, json={"data": {"deploymentLogs": lines[-(limit + 1) :]}})

    def _list(self, variables: dict[str, Any]) -> httpx.Response:
        given = variables.get("input") or {}
        if (given.get("projectId"), given.get("serviceId"), given.get("environmentId")) != (
            PROJECT, SERVICE, ENVIRONMENT,
        ):  # fmt: skip
            return self._gql_error("Project not found")
        first = int(variables.get("first") or 50)
        edges = [{"node": d} for d in self.deployments[:first]]
        return httpx.Response(200, json={"data": {"deployments": {"edges": edges}}})

    def _find(self, deployment_id: str) -> dict[str, Any] | None:
        return next((d for d in self.deployments if d["id"] == deployment_id), None)

    def _one(self, deployment_id: str) -> httpx.Response:
        found = self._find(deployment_id)
        if found is None:
            return self._gql_error("Deployment not found")
        if found["status"] == "DEPLOYING":
            self._countdown[found["id"]] -= 1
            if self._countdown[found["id"]] <= 0:
                for other in self.deployments:
                    if other["status"] == "SUCCESS":
                        other["status"] = "REMOVED"
                found["status"] = "SUCCESS"
        return httpx.Response(200, json={"data": {"deployment": found}})

    def _rollback(self, deployment_id: str) -> httpx.Response:
        found = self._find(deployment_id)
        if found is None:
            return self._gql_error("Deployment not found")
        if not found["canRollback"]:
            return self._gql_error("Deployment cannot be rolled back")
        n = len(self.deployments) + 1
        new = {**node(n, "DEPLOYING"), "meta": dict(found["meta"])}
        self.deployments.insert(0, new)
        self._countdown[new["id"]] = self.polls_until_success
        return httpx.Response(200, json={"data": {"deploymentRollback": True}})
