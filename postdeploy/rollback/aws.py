"""Rollback driver for AWS ECS services, through boto3.

- current:  ``describe_services`` - the task definition of the service's PRIMARY deployment
- releases: ``list_task_definitions(familyPrefix=FAMILY, status="ACTIVE", sort="DESC")`` - the
  revisions of that task definition's family, newest first
- rollback: ``update_service(cluster, service, taskDefinition=PREVIOUS)`` - ECS starts a
  rolling deployment of the earlier revision
- wait:     ``describe_services`` until the PRIMARY deployment runs that revision with
  ``rolloutState`` COMPLETED and as many tasks running as desired (no boto3 waiter: they
  cannot be bounded by our deadline)
- logs:     ``describe_task_definition`` for its ``awslogs`` log group, then CloudWatch Logs
  ``filter_log_events`` on it (time window, line count, pages bounded)

Credentials come from the usual boto3 chain (environment, the profile named by the env var
``profile_env`` names, SSO, an instance or task role, OIDC in CI); ``region`` from targets.toml.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from postdeploy.rollback._http import (
    DEFAULT_POLL_INTERVAL_S,
    Clock,
    Sleep,
    TransientDriverError,
    quote,
    rollback_setting,
    wait_for,
)
from postdeploy.rollback.base import (
    LOG_WINDOW_S,
    Call,
    DriverError,
    DriverUnavailable,
    Instance,
    LifecycleDefaults,
    Release,
    log_line,
)

if TYPE_CHECKING:
    from postdeploy.config import Target

#: How many revisions of the family to read.
MAX_REVISIONS = 50
#: boto3's own retries of throttled or failed calls, within each call's timeouts.
MAX_ATTEMPTS = 3
PRIMARY = "PRIMARY"
AWSLOGS = "awslogs"
LOG_GROUP_NOT_FOUND = "ResourceNotFoundException"
#: filter_log_events answers at most this many events a page, and is asked for at most
#: LOG_PAGES_MAX pages (it answers the oldest first, so a busy window is read in pages).
LOG_EVENTS_MAX = 10_000
LOG_PAGES_MAX = 5
COMPLETED = "COMPLETED"
FAILED = "FAILED"

_DENIED = frozenset({
    "AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId",
    "ExpiredTokenException", "InvalidSignatureException", "SignatureDoesNotMatch",
})  # fmt: skip
_NOT_FOUND = frozenset({"ClusterNotFoundException", "ServiceNotFoundException"})
_TRANSIENT = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException", "ServerException",
    "ServiceUnavailableException", "RequestLimitExceeded", "InternalFailure",
})  # fmt: skip


def family_and_revision(arn: str) -> tuple[str, int]:
    """``arn:...:task-definition/web:12`` (or ``web:12``) -> ``("web", 12)``."""
    name = arn.rsplit("/", 1)[-1]
    family, _, revision = name.rpartition(":")
    try:
        return family, int(revision)
    except ValueError:
        return name, 0


def _release(arn: str, **fields: Any) -> Release:
    family, revision = family_and_revision(arn)
    return Release(id=arn, version=f"{family}:{revision}", ref=arn, **fields)


def primary_deployment(service: Mapping[str, Any]) -> Mapping[str, Any]:
    for deployment in service.get("deployments") or []:
        if deployment.get("status") == PRIMARY:
            return deployment
    return {}


class EcsDriver(LifecycleDefaults):
    platform = "aws"

    def __init__(
        self,
        target: Target,
        *,
        client: Any = None,
        logs_client: Any = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.target = target
        self.clock = clock
        self.sleep = sleep
        self.cluster = str(target.settings.get("cluster", ""))
        self.service = str(target.settings.get("service", ""))
        self.region = str(target.settings.get("region", ""))
        self.poll_interval_s = rollback_setting(target, "poll_interval_s", DEFAULT_POLL_INTERVAL_S)
        self._client = client
        self._logs_client = logs_client

    def __repr__(self) -> str:
        return f"EcsDriver(target={self.target.name!r}, service={self.cluster}/{self.service})"

    # -- boto3 ------------------------------------------------------------------------------

    def _session(self) -> Any:
        profile_env = str(self.target.settings.get("profile_env") or "")
        profile = os.environ.get(profile_env) if profile_env else None
        try:
            return boto3.session.Session(profile_name=profile or None, region_name=self.region)
        except ProfileNotFound:
            raise DriverUnavailable(
                f"aws: target {self.target.name!r}: the AWS profile named by ${profile_env} does "
                "not exist; fix the variable or the AWS config file"
            ) from None

    def ecs(self) -> Any:
        if self._client is None:
            try:
                self._client = self._session().client("ecs", config=self._config())
            except NoRegionError:
                raise DriverUnavailable(
                    f"aws: target {self.target.name!r} has no region; set region in targets.toml"
                ) from None
        return self._client

    def logs_client(self, region: str) -> Any:
        """A CloudWatch Logs client of ``region`` (the log group's), bounded like ECS's."""
        if self._logs_client is None:
            try:
                self._logs_client = self._session().client(
                    "logs", region_name=region or self.region, config=self._config()
                )
            except NoRegionError:
                raise DriverUnavailable(
                    f"aws: target {self.target.name!r} has no region; set region in targets.toml"
                ) from None
        return self._logs_client

    def _config(self) -> Config:
        return Config(
            connect_timeout=self.target.connect_timeout_s,
            read_timeout=self.target.timeout_s,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        )

    def _call(self, operation: str, doing: str, *, client: Any = None, **params: Any) -> Any:
        what = f"aws: {doing} (target {self.target.name!r}, {operation})"
        try:
            return getattr(client or self.ecs(), operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            said = quote(str(error.get("Message", "")))
            if code in _DENIED:
                raise DriverError(
                    f"{what} was refused ({code}: {said}): the AWS credentials are invalid, "
                    "expired or lack ecs:DescribeServices / ecs:ListTaskDefinitions / "
                    "ecs:UpdateService on this service (and, for its logs, "
                    "ecs:DescribeTaskDefinition and logs:FilterLogEvents)"
                ) from None
            if code == LOG_GROUP_NOT_FOUND:
                raise DriverError(
                    f"{what}: {code} ({said}): the log group the task definition names does "
                    "not exist (yet); check its awslogs-group, or set log_group in targets.toml"
                ) from None
            if code in _NOT_FOUND:
                raise DriverError(
                    f"{what}: {code} ({said}): check cluster, service and region "
                    f"({self.cluster}/{self.service} in {self.region}) in targets.toml"
                ) from None
            if code in _TRANSIENT:
                raise TransientDriverError(f"{what}: {code} ({said}); retry later") from None
            raise DriverError(f"{what} was refused: {code}: {said}") from None
        except NoCredentialsError:
            raise DriverUnavailable(
                f"{what}: no AWS credentials found; provide them the usual way (environment, "
                "profile, role, OIDC in CI)"
            ) from None
        except ReadTimeoutError:
            raise TransientDriverError(
                f"{what}: no answer within {self.target.timeout_s:g} s; retry later"
            ) from None
        except BotoConnectionError as exc:
            raise TransientDriverError(
                f"{what}: could not reach ECS ({type(exc).__name__}); check the network and region"
            ) from None
        except BotoCoreError as exc:
            raise DriverError(f"{what} failed: {type(exc).__name__}") from None

    def _describe(self) -> Mapping[str, Any]:
        answer = self._call(
            "describe_services", f"reading service {self.service}",
            cluster=self.cluster, services=[self.service],
        )  # fmt: skip
        services = answer.get("services") or []
        if not services:
            reasons = ", ".join(f.get("reason", "?") for f in answer.get("failures") or [])
            raise DriverError(
                f"aws: service {self.service!r} was not found in cluster {self.cluster!r} "
                f"({reasons or 'no answer'}); check cluster, service and region in targets.toml"
            )
        service: Mapping[str, Any] = services[0]
        if service.get("status") != "ACTIVE":
            raise DriverError(f"aws: service {self.service} is {service.get('status')}, not ACTIVE")
        return service

    # -- the protocol -----------------------------------------------------------------------

    def preflight(self) -> None:
        if not (self.cluster and self.service and self.region):
            raise DriverUnavailable(
                f"aws: target {self.target.name!r} needs cluster, service and region"
            )
        if self._client is None and self._session().get_credentials() is None:
            raise DriverUnavailable(
                f"aws: target {self.target.name!r}: no AWS credentials found; provide them the "
                "usual way (environment, profile, role, OIDC in CI)"
            )

    def current(self) -> Release:
        service = self._describe()
        primary = primary_deployment(service)
        arn = str(primary.get("taskDefinition") or service.get("taskDefinition") or "")
        return _release(
            arn, status=str(primary.get("rolloutState") or service.get("status") or ""),
            created_at=str(primary.get("createdAt") or ""),
        )  # fmt: skip

    def releases(self) -> Sequence[Release]:
        current = self.current()
        family, _ = family_and_revision(current.ref)
        arns: list[str] = []
        params: dict[str, Any] = {"familyPrefix": family, "status": "ACTIVE", "sort": "DESC"}
        while len(arns) < MAX_REVISIONS:
            page = self._call(
                "list_task_definitions", f"listing the revisions of {family}", **params
            )
            arns.extend(page.get("taskDefinitionArns") or [])
            if not page.get("nextToken"):
                break
            params["nextToken"] = page["nextToken"]
        same_family = [a for a in arns if family_and_revision(a)[0] == family]
        if current.ref not in same_family:
            same_family.append(current.ref)
        ordered = sorted(set(same_family), key=lambda a: family_and_revision(a)[1], reverse=True)
        return [
            current if arn == current.ref else _release(arn, status="ACTIVE") for arn in ordered
        ]

    def plan(self, to: Release) -> Sequence[Call]:
        return [
            Call(
                f"ecs.update_service(cluster={self.cluster!r}, service={self.service!r}, "
                f"taskDefinition={to.ref!r}) in {self.region}"
            ),
            Call(
                f"ecs.describe_services(cluster={self.cluster!r}, services=[{self.service!r}]) "
                f"every {self.poll_interval_s:g} s until the PRIMARY deployment runs {to.version} "
                f"with rolloutState {COMPLETED} and runningCount == desiredCount"
            ),
        ]

    def rollback(self, to: Release) -> Release:
        answer = self._call(
            "update_service", f"moving service {self.service} back to {to.version}",
            cluster=self.cluster, service=self.service, taskDefinition=to.ref,
        )  # fmt: skip
        service = answer.get("service") or {}
        primary = primary_deployment(service)
        return _release(
            to.ref, status=str(primary.get("rolloutState") or "IN_PROGRESS"),
            extra={"deployment_id": primary.get("id")} if primary.get("id") else {},
        )  # fmt: skip

    def wait_until_serving(self, release: Release, timeout_s: float) -> bool:
        def serving() -> bool:
            primary = primary_deployment(self._describe())
            if primary.get("taskDefinition") != release.ref:
                return False
            if primary.get("rolloutState") == FAILED:
                raise DriverError(
                    f"aws: the ECS deployment of {release.version} failed: "
                    f"{quote(str(primary.get('rolloutStateReason') or 'no reason given'))}"
                )
            running = primary.get("runningCount") == primary.get("desiredCount")
            state = primary.get("rolloutState")
            return running and state in (COMPLETED, None)

        return wait_for(
            serving, timeout_s=timeout_s, interval_s=self.poll_interval_s, clock=self.clock,
            sleep=self.sleep,
        )  # fmt: skip

    def log_group(self, task_definition: str) -> tuple[str, str, str]:
        """(group, region, stream prefix) of the task definition's ``awslogs`` log driver;
        ``log_group`` in targets.toml overrides the group."""
        answer = self._call(
            "describe_task_definition", f"reading task definition {task_definition}",
            taskDefinition=task_definition,
        )  # fmt: skip
        containers = (answer.get("taskDefinition") or {}).get("containerDefinitions") or []
        for container in containers:
            config = container.get("logConfiguration") or {}
            options = config.get("options") or {}
            if config.get("logDriver") == AWSLOGS and options.get("awslogs-group"):
                group = str(self.target.settings.get("log_group") or options["awslogs-group"])
                region = str(options.get("awslogs-region") or self.region)
                return group, region, str(options.get("awslogs-stream-prefix") or "")
        configured = str(self.target.settings.get("log_group") or "")
        if configured:
            return configured, self.region, ""
        raise DriverUnavailable(
            f"aws: task definition {task_definition} sends no container's logs to CloudWatch "
            "(no awslogs log driver with an awslogs-group); configure one, or set log_group in "
            "targets.toml"
        )

    def logs(self, limit: int = 200) -> list[str]:
        """The serving task definition's log lines of the last :data:`LOG_WINDOW_S` seconds:
        CloudWatch Logs ``filter_log_events`` on its ``awslogs`` group (and stream prefix),
        at most :data:`LOG_PAGES_MAX` pages; the newest ``limit``, oldest first."""
        group, region, prefix = self.log_group(self.current().ref)
        client = self.logs_client(region)
        now_ms = int(time.time() * 1000)
        params: dict[str, Any] = {
            "logGroupName": group,
            "startTime": now_ms - LOG_WINDOW_S * 1000,
            "endTime": now_ms,
            "limit": max(1, min(limit, LOG_EVENTS_MAX)),
        }
        if prefix:
            params["logStreamNamePrefix"] = prefix
        events: list[Mapping[str, Any]] = []
        for _ in range(LOG_PAGES_MAX):
            page = self._call(
                "filter_log_events", f"reading log group {group}", client=client, **params
            )
            events.extend(page.get("events") or [])
            token = page.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        events.sort(key=lambda event: int(event.get("timestamp") or 0))
        lines = [
            log_line(
                dt.datetime.fromtimestamp(int(e.get("timestamp") or 0) / 1000, dt.UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                str(e.get("message") or "").rstrip("\n"),
            )
            for e in events
        ]
        return lines[-limit:] if limit else []

    def instances(self) -> list[Instance]:
        """An ALB cannot be told to send a request to one ECS task: none listed."""
        return []
