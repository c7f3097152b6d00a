"""Rollback driver for Railway, through its public GraphQL API (``api_url``).

- releases: ``deployments(input: {projectId, serviceId, environmentId}, first: N)``
  (edges/node: id, status, createdAt, canRollback, meta, staticUrl)
- current:  the newest deployment whose status is ``SUCCESS`` (or ``SLEEPING``)
- rollback: ``mutation { deploymentRollback(id: ...) }`` - Railway answers ``true`` and starts
  a new deployment with the old one's image and variables
- wait:     ``deployment(id)`` of that new deployment until its status is ``SUCCESS``
- logs:     ``deploymentLogs(deploymentId, limit, startDate)`` of the current deployment

Railway decides what can be rolled back (``canRollback``: its retention keeps images for a
while); a deployment with ``canRollback: false`` is never chosen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from postdeploy.rollback._http import RestDriver, TransientDriverError, quote
from postdeploy.rollback.base import LOG_WINDOW_S, Call, DriverError, Release, log_line

#: How many deployments to read.
DEPLOYMENTS_FIRST = 20
LOG_LINES_MAX = 1000
SERVING = frozenset({"SUCCESS", "SLEEPING"})
FAILED = frozenset({"FAILED", "CRASHED", "REMOVED", "SKIPPED"})
#: Statuses never rolled back to, whatever canRollback says.
NEVER_TARGETS = frozenset({"FAILED", "CRASHED", "SKIPPED"})

_NODE_FIELDS = "id status createdAt canRollback meta staticUrl"
DEPLOYMENTS_QUERY = (
    "query Deployments($input: DeploymentListInput!, $first: Int) { "
    f"deployments(input: $input, first: $first) {{ edges {{ node {{ {_NODE_FIELDS} }} }} }} }}"
)
DEPLOYMENT_QUERY = f"query Deployment($id: String!) {{ deployment(id: $id) {{ {_NODE_FIELDS} }} }}"
ROLLBACK_MUTATION = "mutation Rollback($id: String!) { deploymentRollback(id: $id) }"
LOGS_QUERY = (
    "query Logs($deploymentId: String!, $limit: Int, $startDate: DateTime) { "
    "deploymentLogs(deploymentId: $deploymentId, limit: $limit, startDate: $startDate) "
    "{ timestamp message } }"
)


def _release(node: Mapping[str, Any]) -> Release:
    raw_meta = node.get("meta")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    commit = str(meta.get("commitHash") or "")
    status = str(node.get("status", ""))
    return Release(
        id=str(node.get("id", "")),
        version=commit[:12] or str(node.get("id", ""))[:8],
        ref=str(meta.get("image") or commit),
        status=status,
        created_at=str(node.get("createdAt") or ""),
        can_rollback=bool(node.get("canRollback")) and status not in NEVER_TARGETS,
        extra={k: v for k, v in (("static_url", node.get("staticUrl")),) if v},
    )


class RailwayDriver(RestDriver):
    platform = "railway"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: ids of the deployments that existed when the rollback was asked for
        self._before: set[str] = set()

    def not_found_hint(self) -> str:
        return (
            "check api_url in targets.toml (Railway's is https://backboard.railway.com/graphql/v2)"
        )

    def _graphql(self, query: str, variables: Mapping[str, Any], *, what: str) -> Any:
        body = self._request(
            "POST", self.api_url, json={"query": query, "variables": dict(variables)},
            what=what, idempotent=not query.startswith("mutation"),
        )  # fmt: skip
        if not isinstance(body, Mapping):
            raise DriverError(f"railway: {what} answered without a GraphQL body; check api_url")
        errors = body.get("errors")
        if errors:
            said = quote(str((errors[0] or {}).get("message", "")), self._secrets())
            lowered = said.lower()
            where = f"railway: {what} (target {self.target.name!r})"
            if "not authorized" in lowered or "unauthorized" in lowered:
                raise DriverError(
                    f'{where} was refused ("{said}"): the token in ${self.token_env} is invalid '
                    f"or has no access to project {self.target.setting('project_id')}; put an "
                    f"account or team token with access in ${self.token_env}"
                )
            if "not found" in lowered:
                raise DriverError(
                    f'{where} found nothing ("{said}"): check project_id, service_id and '
                    "environment_id in targets.toml"
                )
            if "rate limit" in lowered:
                raise TransientDriverError(f'{where} was rate limited ("{said}"); retry later')
            raise DriverError(f'{where} was refused by Railway: "{said}"')
        return body.get("data") or {}

    def _input(self) -> dict[str, str]:
        return {
            "projectId": str(self.target.setting("project_id")),
            "serviceId": str(self.target.setting("service_id")),
            "environmentId": str(self.target.setting("environment_id")),
        }

    def releases(self) -> Sequence[Release]:
        data = self._graphql(
            DEPLOYMENTS_QUERY, {"input": self._input(), "first": DEPLOYMENTS_FIRST},
            what=f"listing the deployments of service {self.target.setting('service_id')}",
        )  # fmt: skip
        edges = ((data.get("deployments") or {}).get("edges")) or []
        nodes = [e["node"] for e in edges if isinstance(e, Mapping) and e.get("node")]
        return sorted((_release(n) for n in nodes), key=lambda r: r.created_at, reverse=True)

    def current(self) -> Release:
        for release in self.releases():
            if release.status in SERVING:
                return release
        raise DriverError(
            f"railway: service {self.target.setting('service_id')} has no deployment with status "
            "SUCCESS in this environment; look at its Deployments tab in Railway"
        )

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f'POST {self.api_url} {{"query": "{ROLLBACK_MUTATION}", '
                f'"variables": {{"id": "{to.id}"}}}} {self._bearer_note()}'
            ),
            Call(
                f"POST {self.api_url} deployment(id: <new deployment id>) every "
                f"{self.poll_interval_s:g} s until its status is SUCCESS"
            ),
        ]

    def rollback(self, to: Release) -> Release:
        if not to.can_rollback:
            raise DriverError(
                f"railway: deployment {to.id} cannot be rolled back (canRollback is false or it "
                f"{to.status or 'did not succeed'}); Railway keeps images only for a while - "
                "redeploy a known good commit instead"
            )
        self._before = {release.id for release in self.releases()}
        data = self._graphql(
            ROLLBACK_MUTATION, {"id": to.id}, what=f"rolling back to deployment {to.id}"
        )
        if data.get("deploymentRollback") is False:
            raise DriverError(
                f"railway: Railway declined the rollback to deployment {to.id}; see the "
                "service's Deployments tab"
            )
        new = self._new_deployment()
        if new is not None:
            return new
        return Release(
            id=to.id, version=to.version, ref=to.ref, status="QUEUED",
            extra={"pending": True, "rollback_of": to.id},
        )  # fmt: skip

    def _new_deployment(self) -> Release | None:
        """The newest deployment created after the rollback was asked for, if one shows yet."""
        for release in self.releases():
            if release.id not in self._before:
                return release
        return None

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        watched = None if release.extra.get("pending") else release.id

        def serving() -> bool:
            nonlocal watched
            if watched is None:
                new = self._new_deployment()
                if new is None:
                    return False
                watched = new.id
            data = self._graphql(
                DEPLOYMENT_QUERY, {"id": watched}, what=f"reading deployment {watched}"
            )
            status = str((data.get("deployment") or {}).get("status", ""))
            if status in FAILED:
                raise DriverError(
                    f"railway: rollback deployment {watched} ended with status {status}; see "
                    "its build and deploy logs in Railway"
                )
            return status in SERVING

        return self._wait(serving, timeout_s)

    def logs(self, limit: int = 200) -> list[str]:
        """The current deployment's recent log lines (``deploymentLogs`` with ``limit`` and a
        ``startDate`` :data:`LOG_WINDOW_S` ago), oldest first. Railway may answer one line more
        than ``limit``; the newest ``limit`` are kept."""
        current = self.current()
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=LOG_WINDOW_S)
        variables = {
            "deploymentId": current.id,
            "limit": min(limit, LOG_LINES_MAX),
            "startDate": since.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        data = self._graphql(
            LOGS_QUERY, variables, what=f"reading the logs of deployment {current.id}"
        )
        entries = data.get("deploymentLogs")
        if not isinstance(entries, list):
            raise DriverError(
                f"railway: the logs of deployment {current.id} came back without a "
                "deploymentLogs list; check api_url"
            )
        lines = [
            log_line(entry.get("timestamp"), entry.get("message"))
            for entry in entries
            if isinstance(entry, Mapping)
        ]
        return lines[-limit:] if limit else []
