"""Performance - Response times: every key endpoint answers within the SLO (p95 < 2 s).

Each endpoint gets ``[performance] warmup`` untimed requests, then ``[performance] samples``
timed ones, one after another (the load test measures concurrency). Different endpoints are
sampled at the same time, at most the target's ``concurrency`` at once: the first of these
checks samples every selected endpoint of its target, and each check judges its own. The
p50/p95/p99 table is attached to the report; the p95 is judged against ``[thresholds]
response_time_ms``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from postdeploy.contract import KEY_ENDPOINTS, KeyEndpoint
from postdeploy.http import new_client
from postdeploy.performance.response_times import Samples, sample, sample_each
from postdeploy.reporting.attachments import attach_text
from postdeploy.users import UserFactory

if TYPE_CHECKING:
    from collections.abc import Callable

    from postdeploy.accounts import AccountPool
    from postdeploy.config import Target
    from postdeploy.users import SyntheticUser

CHECK = "test_response_time_p95_is_within_the_slo"


class ResponseTimes:
    """The samples of one target's key endpoints, taken once, several endpoints at a time."""

    def __init__(
        self, target: Target, run_id: str, accounts: AccountPool, selected: list[KeyEndpoint]
    ) -> None:
        self.target, self.run_id, self.accounts = target, run_id, accounts
        #: endpoints still to sample together with the first one a check asks for
        self.selected = selected
        self.results: dict[str, Samples | Exception] = {}

    def of(self, endpoint: KeyEndpoint) -> Samples:
        if endpoint.name not in self.results:
            batch = [endpoint, *(e for e in self.selected if e.name not in self.results)]
            self.results.update(self._sample(list({e.name: e for e in batch}.values())))
        result = self.results[endpoint.name]
        if isinstance(result, Exception):
            raise result
        return result

    def _sample(self, endpoints: list[KeyEndpoint]) -> dict[str, Samples | Exception]:
        """One leased user for every endpoint that needs a login (a real user with several
        tabs open), so sampling at once registers no more accounts than one at a time."""
        with new_client(self.target) as client:
            users = UserFactory(client, self.run_id, self.accounts)
            try:
                user: SyntheticUser | Exception | None = (
                    users() if any(e.login for e in endpoints) else None
                )
            except Exception as exc:  # raised by each check that needed the login
                user = exc
            try:
                samplers = {e.name: self._sampler(e, user) for e in endpoints}
                return sample_each(samplers, max(1, int(self.target.concurrency)))
            finally:
                users.cleanup()

    def _sampler(
        self, endpoint: KeyEndpoint, user: SyntheticUser | Exception | None
    ) -> Callable[[], Samples]:
        def run() -> Samples:
            if isinstance(user, Exception):
                raise user
            headers = user.auth if endpoint.login and user is not None else {}
            options = {
                "headers": headers,
                **({"json": dict(endpoint.body)} if endpoint.body else {}),
            }
            # Timed with a client of its own: recording exchanges would add to what is measured.
            with new_client(self.target) as client:
                return sample(
                    endpoint.label,
                    lambda: client.request(endpoint.method, endpoint.path, **options),
                    endpoint.status,
                    samples=int(self.target.performance.samples),
                    warmup=int(self.target.performance.warmup),
                    limit_ms=float(self.target.thresholds.response_time_ms),
                )

        return run


def _selected(session: pytest.Session, target: Target) -> list[KeyEndpoint]:
    """The endpoints whose checks on ``target`` this process runs: every selected one, or in
    an xdist worker (which runs only some of the collected checks) none in advance."""
    if hasattr(session.config, "workerinput"):
        return []
    selected = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "originalname", "") != CHECK or callspec is None:
            continue
        if callspec.params.get("target") == target.name:
            selected.append(callspec.params["endpoint"])
    return selected


@pytest.fixture(scope="session")
def response_times(
    request: pytest.FixtureRequest, target: Target, run_id: str, accounts: AccountPool
) -> ResponseTimes:
    return ResponseTimes(target, run_id, accounts, _selected(request.session, target))


@pytest.mark.gating
@pytest.mark.alone
@pytest.mark.parametrize("endpoint", KEY_ENDPOINTS, ids=[e.name for e in KEY_ENDPOINTS])
def test_response_time_p95_is_within_the_slo(endpoint, target, response_times):
    samples = response_times.of(endpoint)
    limit_ms = float(target.thresholds.response_time_ms)
    attach_text(f"response times of {endpoint.label}", samples.table())
    assert samples.within(), (
        f"{endpoint.label}: p95 {samples.p95_ms:.0f} ms is over the {limit_ms:.0f} ms "
        f"response-time SLO; {samples.figures()}"
    )
