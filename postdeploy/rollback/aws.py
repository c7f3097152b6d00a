"""Rollback driver for AWS ECS services, through boto3.

- current:  ``describe_services`` - the task definition of the service's PRIMARY deployment
- releases: ``list_task_definitions(familyPrefix=FAMILY, status="ACTIVE", sort="DESC")`` - the
  revisions of that task definition's family, newest first
- rollback: ``update_service(cluster, service, taskDefinition=PREVIOUS)`` - ECS starts a
  rolling deployment of the earlier revision
- wait:     ``describe_services`` until the PRIMARY deployment runs that revision with
  ``rolloutState`` COMPLETED and as many tasks running as desired (no boto3 waiter: they
  cannot be bounded by our deadline)

Credentials come from the usual boto3 chain (environment, the profile named by the env var
``profile_env`` names, SSO, an instance or task role, OIDC in CI); ``region`` from targets.toml.
"""

from __future__ import annotations

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
    Call,
    DriverError,
    DriverUnavailable,
    LifecycleDefaults,
    Release,
)

if TYPE_CHECKING:
    from postdeploy.config import Target

#: How many revisions of the family to read.
MAX_REVISIONS = 50
#: boto3's own retries of throttled or failed calls, within each call's timeouts.
MAX_ATTEMPTS = 3
PRIMARY = "PRIMARY"
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
            config = Config(
                connect_timeout=self.target.connect_timeout_s,
                read_timeout=self.target.timeout_s,
                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            )
            try:
                self._client = self._session().client("ecs", config=config)
            except NoRegionError:
                raise DriverUnavailable(
                    f"aws: target {self.target.name!r} has no region; set region in targets.toml"
                ) from None
        return self._client

    def _call(self, operation: str, doing: str, **params: Any) -> Any:
        what = f"aws: {doing} (target {self.target.name!r}, {operation})"
        try:
            return getattr(self.ecs(), operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            said = quote(str(error.get("Message", "")))
            if code in _DENIED:
                raise DriverError(
                    f"{what} was refused ({code}: {said}): the AWS credentials are invalid, "
                    "expired or lack ecs:DescribeServices / ecs:ListTaskDefinitions / "
                    "ecs:UpdateService on this service"
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

    def logs(self, limit: int = 200) -> list[str]:
        """This driver does not read CloudWatch Logs."""
        return []
