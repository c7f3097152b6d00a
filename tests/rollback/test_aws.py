"""The ECS driver against moto's ECS, with the stand-in scheduler carrying deployments out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from postdeploy.config import Target
from postdeploy.rollback.aws import LOG_PAGES_MAX, EcsDriver
from postdeploy.rollback.base import DriverError, DriverUnavailable, previous_good
from tests.standins._base import FakeClock
from tests.standins.ecs import EcsScheduler

REGION, CLUSTER, SERVICE, FAMILY = "eu-west-1", "la-cluster", "la-web", "la-web"
ARN = f"arn:aws:ecs:{REGION}:123456789012:task-definition/{FAMILY}:%d"
LOG_GROUP, LOG_PREFIX = "/ecs/la-web", "web"
AWSLOGS = {
    "logDriver": "awslogs",
    "options": {
        "awslogs-group": LOG_GROUP, "awslogs-region": REGION, "awslogs-stream-prefix": LOG_PREFIX,
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def session() -> Any:
    """One boto3 session for the module: its clients share the loaded ECS model (fast)."""
    return boto3.session.Session(region_name=REGION)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, session: Any) -> Iterator[Any]:
    """moto's ECS with a service on revision 4 of its family (3 earlier ones, one other family)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        ecs = session.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        for n in range(1, 5):
            ecs.register_task_definition(
                family=FAMILY,
                containerDefinitions=[
                    {
                        "name": "app",
                        "image": f"ecr.test/la:1.{n}",
                        "memory": 256,
                        "logConfiguration": AWSLOGS,
                    }
                ],
            )
        ecs.register_task_definition(
            family="la-worker", containerDefinitions=[{"name": "w", "image": "w", "memory": 64}]
        )
        ecs.create_service(
            cluster=CLUSTER, serviceName=SERVICE, taskDefinition=f"{FAMILY}:4", desiredCount=2
        )
        yield ecs


@pytest.fixture
def scheduler(aws: Any) -> EcsScheduler:
    scheduler = EcsScheduler(REGION)
    scheduler.settle()
    return scheduler


@pytest.fixture
def ecs_target(make_target: Callable[..., Target]) -> Target:
    return make_target("aws", cluster=CLUSTER, service=SERVICE, region=REGION)


@pytest.fixture
def driver(ecs_target: Target, scheduler: EcsScheduler, aws: Any) -> EcsDriver:
    clock = FakeClock(on_sleep=scheduler.tick)
    return EcsDriver(ecs_target, client=aws, clock=clock, sleep=clock.sleep)


def test_current_is_the_task_definition_of_the_primary_deployment(driver: EcsDriver) -> None:
    current = driver.current()
    assert (current.id, current.version, current.status) == (ARN % 4, "la-web:4", "COMPLETED")


def test_releases_are_the_family_s_revisions_newest_first(driver: EcsDriver) -> None:
    releases = driver.releases()
    assert [r.version for r in releases] == ["la-web:4", "la-web:3", "la-web:2", "la-web:1"]
    assert all(r.ref == r.id and r.can_rollback for r in releases)


def test_previous_good_is_the_previous_revision(driver: EcsDriver) -> None:
    assert previous_good(driver.releases(), driver.current()).version == "la-web:3"


def test_plan_is_the_exact_update_service_call(driver: EcsDriver) -> None:
    plan = [str(call) for call in driver.plan(driver.releases()[1])]
    assert plan[0] == (
        f"ecs.update_service(cluster='{CLUSTER}', service='{SERVICE}', "
        f"taskDefinition='{ARN % 3}') in {REGION}"
    )
    assert "rolloutState COMPLETED" in plan[1]


def test_rollback_updates_the_service_and_waits_for_the_rollout(
    driver: EcsDriver, aws: Any, scheduler: EcsScheduler
) -> None:
    to = previous_good(driver.releases(), driver.current())
    new = driver.rollback(to)
    assert new.ref == ARN % 3
    assert (
        aws.describe_services(cluster=CLUSTER, services=[SERVICE])["services"][0]["taskDefinition"]
        == ARN % 3
    )
    assert driver.wait_until_serving(new, timeout_s=30)
    assert scheduler.ticks >= 4
    assert driver.current().version == "la-web:3"


def test_a_failed_rollout_ends_the_wait(driver: EcsDriver, scheduler: EcsScheduler) -> None:
    scheduler.fail = True
    new = driver.rollback(driver.releases()[1])
    with pytest.raises(DriverError, match=r"deployment of la-web:3 failed: tasks failed"):
        driver.wait_until_serving(new, timeout_s=30)


def test_a_rollout_that_does_not_finish_times_out(
    ecs_target: Target, scheduler: EcsScheduler, aws: Any
) -> None:
    clock = FakeClock()  # the scheduler never runs
    driver = EcsDriver(ecs_target, client=aws, clock=clock, sleep=clock.sleep)
    new = driver.rollback(driver.releases()[1])
    assert driver.wait_until_serving(new, timeout_s=10) is False
    assert 10 <= clock.now < 11


def test_an_unknown_service_names_the_settings(
    make_target: Callable[..., Target], scheduler: EcsScheduler, aws: Any
) -> None:
    target = make_target("aws", cluster=CLUSTER, service="nope", region=REGION)
    with pytest.raises(DriverError, match=r"'nope' was not found in cluster .*targets.toml"):
        EcsDriver(target, client=aws).current()


def test_an_unknown_cluster_names_the_settings(
    make_target: Callable[..., Target], scheduler: EcsScheduler, aws: Any
) -> None:
    target = make_target("aws", cluster="nope", service=SERVICE, region=REGION)
    with pytest.raises(DriverError, match=r"ClusterNotFoundException.*check cluster, service"):
        EcsDriver(target, client=aws).current()


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [
        ("AccessDeniedException", 400, "credentials are invalid, expired or lack"),
        ("ExpiredTokenException", 400, "credentials are invalid"),
        ("ThrottlingException", 400, "retry later"),
        ("ServerException", 500, "retry later"),
        ("ClientException", 400, "was refused: ClientException"),
    ],
)
def test_ecs_error_answers_are_clear_driver_errors(
    ecs_target: Target, session: Any, code: str, status: int, words: str
) -> None:
    client = session.client("ecs")
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_services", service_error_code=code, service_message="stand-in",
            http_status_code=status,
        )  # fmt: skip
        with pytest.raises(DriverError, match=words):
            EcsDriver(ecs_target, client=client).current()


class _Unreachable:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def describe_services(self, **params: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ReadTimeoutError(endpoint_url="https://ecs.test"), r"no answer within 2 s"),
        (EndpointConnectionError(endpoint_url="https://ecs.test"), r"could not reach ECS"),
    ],
)
def test_timeouts_and_unreachable_endpoints_are_driver_errors(
    ecs_target: Target, error: Exception, words: str
) -> None:
    with pytest.raises(DriverError, match=words):
        EcsDriver(ecs_target, client=_Unreachable(error)).current()


def test_preflight_needs_credentials(
    ecs_target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(DriverUnavailable, match=r"no AWS credentials found"):
        EcsDriver(ecs_target).preflight()


def test_the_driver_builds_its_own_client_from_the_target(
    ecs_target: Target, scheduler: EcsScheduler
) -> None:
    driver = EcsDriver(ecs_target)
    driver.preflight()
    assert driver.current().version == "la-web:4"
    config = driver.ecs().meta.config
    assert (config.read_timeout, config.connect_timeout) == (2.0, 3.0)
    assert driver.ecs().meta.region_name == REGION


# -- logs: CloudWatch Logs of the task definition's awslogs group ------------------------------


@pytest.fixture
def cloudwatch(aws: Any, session: Any) -> Any:
    """The awslogs group with lines of the serving task's stream, one older than the window.
    (moto ignores ``logStreamNamePrefix``; a stubbed call below checks that it is sent.)"""
    logs = session.client("logs")
    logs.create_log_group(logGroupName=LOG_GROUP)
    now_ms = int(time.time() * 1000)
    for stream, events in {
        f"{LOG_PREFIX}/app/task-1": [
            (now_ms - 2 * 3600 * 1000, "before the window"),
            (now_ms - 30_000, "listening on 8000"),
            (now_ms - 10_000, "GET /api/health 200 pd-request-1"),
        ],
    }.items():
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        logs.put_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream,
            logEvents=[{"timestamp": ts, "message": message} for ts, message in events],
        )  # fmt: skip
    return logs


def test_logs_are_filter_log_events_of_the_task_definition_s_awslogs_group(
    driver: EcsDriver, cloudwatch: Any
) -> None:
    driver._logs_client = cloudwatch
    lines = driver.logs()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "listening on 8000", "GET /api/health 200 pd-request-1",
    ]  # fmt: skip
    assert lines[0].endswith("Z listening on 8000")


def test_logs_keep_the_newest_up_to_the_limit(driver: EcsDriver, cloudwatch: Any) -> None:
    driver._logs_client = cloudwatch
    assert [line.split(" ", 1)[1] for line in driver.logs(limit=1)] == [
        "GET /api/health 200 pd-request-1"
    ]


def test_logs_build_their_client_in_the_log_group_s_region(
    driver: EcsDriver, cloudwatch: Any
) -> None:
    assert len(driver.logs()) == 2
    client = driver.logs_client(REGION)
    assert client.meta.region_name == REGION
    assert client.meta.config.read_timeout == 2.0


def test_a_missing_log_group_is_a_driver_error_naming_the_setting(driver: EcsDriver) -> None:
    with pytest.raises(DriverError, match=r"ResourceNotFoundException.*set log_group"):
        driver.logs()


def test_a_task_definition_without_awslogs_is_unavailable_naming_the_fix(
    driver: EcsDriver, aws: Any
) -> None:
    aws.register_task_definition(
        family=FAMILY, containerDefinitions=[{"name": "app", "image": "x", "memory": 256}]
    )
    aws.update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=f"{FAMILY}:5")
    EcsScheduler(REGION).settle()
    with pytest.raises(DriverUnavailable, match=r"no awslogs log driver.*set log_group"):
        driver.logs()


def test_logs_ask_for_the_task_s_stream_prefix_in_a_bounded_window(
    driver: EcsDriver, session: Any
) -> None:
    logs = session.client("logs")
    driver._logs_client = logs
    with Stubber(logs) as stub:
        stub.add_response("filter_log_events", {"events": [
            {"logStreamName": "web/app/t", "timestamp": 1_700_000_000_000, "message": "hi\n"},
        ]}, {
            "logGroupName": LOG_GROUP, "logStreamNamePrefix": LOG_PREFIX, "limit": 50,
            "startTime": ANY, "endTime": ANY,
        })  # fmt: skip
        assert driver.logs(limit=50) == ["2023-11-14T22:13:20.000Z hi"]
        stub.assert_no_pending_responses()


def test_logs_read_at_most_a_few_pages(driver: EcsDriver, session: Any) -> None:
    logs = session.client("logs")
    driver._logs_client = logs
    with Stubber(logs) as stub:
        for page in range(LOG_PAGES_MAX):
            stub.add_response("filter_log_events", {"events": [
                {"timestamp": 1_700_000_000_000 + page, "message": f"page {page}"},
            ], "nextToken": f"t{page}"})  # fmt: skip
        lines = driver.logs(limit=2)
        stub.assert_no_pending_responses()
    assert [line.split(" ", 1)[1] for line in lines] == [
        f"page {LOG_PAGES_MAX - 2}", f"page {LOG_PAGES_MAX - 1}",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("AccessDeniedException", "logs:FilterLogEvents"),
        ("ThrottlingException", "retry later"),
    ],
)
def test_cloudwatch_error_answers_are_clear_driver_errors(
    driver: EcsDriver, session: Any, code: str, words: str
) -> None:
    logs = session.client("logs")
    driver._logs_client = logs
    with Stubber(logs) as stub:
        stub.add_client_error(
            "filter_log_events", service_error_code=code, service_message="stand-in",
            http_status_code=400,
        )  # fmt: skip
        with pytest.raises(DriverError, match=words):
            driver.logs()
