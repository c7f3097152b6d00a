"""The nouns tests use: ``target`` -> ``api`` -> ``user``, plus ``new_user`` and ``run_id``.

``user`` and ``new_user()`` lend accounts of the run's pool (``accounts``), registered once per
run and shared by the checks one at a time; ``new_user.register()``/``fresh()`` register an
account of the test's own, for checks whose subject is a new account.

``target`` is session-scoped and parametrized by the plugin (one value per selected target).
It checks once that the target answers; when it does not, every test that uses it fails at
once with the same message instead of waiting out a timeout each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from postdeploy.contract import PATHS
from postdeploy.gate import SETUP_FAILED, BackendError, TargetUnreachable
from postdeploy.http import RECORDER_KEY, Recorder, new_client
from postdeploy.settings import settings_of
from postdeploy.users import SyntheticUser, UserFactory

if TYPE_CHECKING:
    from collections.abc import Iterator

    from postdeploy.accounts import AccountPool
    from postdeploy.config import Target
    from postdeploy.instances import Route
    from postdeploy.rollback.base import Instance
    from postdeploy.rollout import RolloutResult
    from postdeploy.settings import RunSettings

#: Connect timeout of the one reachability probe per target and run.
PROBE_CONNECT_TIMEOUT_S = 5.0


class PlatformSetupError(BackendError):
    """Preparing the target's platform failed before the target was asked anything (the local
    platform could not deploy, a certificate could not be made): the harness's side, so every
    check of the target is broken, never failed - only "the target did not answer" is."""

    def __init__(self, message: str, platform: str) -> None:
        super().__init__(message, system=f"{platform} platform", how=SETUP_FAILED)


def _settings(config: pytest.Config) -> RunSettings:
    return settings_of(config)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def run_id(pytestconfig: pytest.Config) -> str:
    """Identifier of this run; synthetic data carries it."""
    return _settings(pytestconfig).run_id


def _serving_version(target: Target) -> str:
    """The version the target reports; raises TargetUnreachable if it does not answer."""
    try:
        with new_client(
            target, timeout=httpx.Timeout(target.timeout_s, connect=PROBE_CONNECT_TIMEOUT_S)
        ) as client:
            response = client.get(PATHS.health)
    except httpx.TransportError as exc:
        raise TargetUnreachable(
            f"target {target.name!r} is unreachable at {target.url}: "
            f"{type(exc).__name__}: {exc or 'no answer'}. Check the URL ({target.source} or "
            f"POSTDEPLOY_{target.name.upper()}_URL) and that the deployment is up"
        ) from None
    try:
        return str(response.json().get("version", ""))
    except ValueError:
        return ""


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    """The deployment under validation (parametrized: one per selected target)."""
    settings = _settings(request.config)
    selected: Target = settings.targets[request.param]
    from postdeploy.rollback import lifecycle_of

    try:  # a platform postdeploy runs itself (local) deploys here if nothing serves
        selected = lifecycle_of(selected).prepare(settings.run_id, settings.expect_version)
    except (TargetUnreachable, BackendError):
        raise
    except Exception as exc:
        raise PlatformSetupError(
            f"target {selected.name!r}: setting up the {selected.platform} platform failed "
            f"({type(exc).__name__}: {exc}); the target was not asked anything",
            selected.platform,
        ) from None
    settings.serving_versions[selected.name] = _serving_version(selected)
    from postdeploy.early import early_starts

    starts = early_starts(request.config)
    if starts.enabled:
        request.config.hook.pytest_postdeploy_start_early(
            session=request.session, target=selected, starts=starts
        )
    return selected


@pytest.fixture(scope="session")
def expected_version(request: pytest.FixtureRequest, target: Target) -> str | None:
    """The release that should serve: ``--expect-version``, else what the platform deployed."""
    settings = _settings(request.config)
    if settings.expect_version:
        return settings.expect_version
    from postdeploy.rollback import lifecycle_of

    return lifecycle_of(target).current_app_version()


@pytest.fixture(scope="session")
def instances(target: Target) -> list[Instance]:
    """The instances serving the target, as its platform driver lists them (maybe none)."""
    from postdeploy.instances import list_instances

    return list_instances(target)


@pytest.fixture(scope="session")
def instance_routes(target: Target, instances: list[Instance]) -> list[Route]:
    """How a per-instance check reaches each instance (or repeats, where it cannot)."""
    from postdeploy.instances import routes

    return routes(target, instances)


@pytest.fixture(scope="session")
def rollout(request: pytest.FixtureRequest, target: Target) -> RolloutResult | None:
    """With ``--expect-version``: the wait until every instance reports it (None without)."""
    from postdeploy.instances import list_instances, routes
    from postdeploy.rollout import wait_for_rollout

    expected = _settings(request.config).expect_version
    if not expected:
        return None
    with new_client(target) as client:
        return wait_for_rollout(
            client,
            expected,
            lambda: list_instances(target),
            lambda found: routes(target, found),
            timeout_s=target.rollout_timeout_s,
            stable_probes=max(int(target.rollout_stable_probes), 1),
        )


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Recorder:
    """Records this test's HTTP exchanges (redacted) for the report."""
    recording = Recorder()
    request.node.stash[RECORDER_KEY] = recording
    return recording


@pytest.fixture
def api(
    target: Target, recorder: Recorder, rollout: RolloutResult | None
) -> Iterator[httpx.Client]:
    """An HTTP client for the target: its base URL, CA, timeouts; every exchange recorded.

    With ``--expect-version`` the first one waits for the rollout to finish (``rollout``).
    """
    with new_client(target, recorder) as client:
        yield client


@pytest.fixture(scope="session")
def accounts(request: pytest.FixtureRequest, target: Target) -> Iterator[AccountPool]:
    """The run's pool of synthetic accounts on ``target`` (deleted by the controller at the
    end of the run: with xdist the workers share it)."""
    from postdeploy.accounts import pool_for

    with new_client(target) as client:
        yield pool_for(target, _settings(request.config).run_id, client)


@pytest.fixture
def new_user(
    target: Target, recorder: Recorder, run_id: str, accounts: AccountPool
) -> Iterator[UserFactory]:
    """Synthetic users: ``new_user()`` leases a pooled account (given back after the test),
    ``new_user.fresh()``/``register()`` make one of the test's own (deleted after it)."""
    with new_client(target, recorder) as client:
        factory = UserFactory(client, run_id, accounts)
        yield factory
        factory.cleanup()


@pytest.fixture
def user(new_user: UserFactory) -> SyntheticUser:
    """A registered, logged-in synthetic user of the pool, this test's alone while it runs
    (bearer token in ``user.auth``)."""
    return new_user()
