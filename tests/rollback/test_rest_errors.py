"""Every REST driver turns each platform error answer into a clear DriverError, without the token.

The same answers - 401, 403, 404, 409 (something in progress), 429, 5xx, a timeout, a refused
connection - are given by each platform's stand-in to the listing call and to the rollback
call, and the message must say what went wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from postdeploy.config import Target
from postdeploy.rollback.base import DriverError, DriverUnavailable, previous_good
from tests.rollback.conftest import FAKE_TOKEN
from tests.rollback.rigs import RIGS, Rig
from tests.standins._base import FakeClock

#: answer -> words the message must contain
ANSWERS: dict[int | str, tuple[str, ...]] = {
    401: ("401", "$PD_TEST_TOKEN", "valid"),
    403: ("403", "$PD_TEST_TOKEN", "access"),
    404: ("404", "targets.toml"),
    409: ("409", "in progress", "wait"),
    429: ("429", "retry later"),
    500: ("500", "retry later"),
    503: ("503", "retry later"),
    "timeout": ("no answer", "within 2 s"),
    "connect": ("could not reach", "api_url"),
}
#: The path piece of each platform's rollback call.
ROLLBACK_PATH = {"render": "/rollback", "railway": "/graphql", "gcp": "/services/",
                 "azure": "/slotsswap"}  # fmt: skip
ROLLBACK_METHOD = {"render": "POST", "railway": "POST", "gcp": "PATCH", "azure": "POST"}


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest, token: str, make_target: Callable[..., Target],
        clock: FakeClock) -> Rig:  # fmt: skip
    return RIGS[request.param](make_target, clock)


@pytest.mark.parametrize("answer", list(ANSWERS), ids=str)
def test_a_refused_listing_is_a_clear_driver_error(
    rig: Rig,
    answer: int | str,
    no_secret_anywhere: Callable[..., None],
) -> None:
    rig.standin.fail(answer, times=99)
    with pytest.raises(DriverError) as caught:
        rig.driver.releases()
    message = str(caught.value)
    for words in ANSWERS[answer]:
        assert words in message, message
    assert rig.driver.platform in message
    assert "target" in message
    no_secret_anywhere(message, repr(caught.value), repr(rig.driver))


@pytest.mark.parametrize("answer", [401, 404, 409, 500, "timeout"], ids=str)
def test_a_refused_rollback_is_a_clear_driver_error_and_changes_nothing(
    rig: Rig,
    answer: int | str,
    no_secret_anywhere: Callable[..., None],
) -> None:
    before = rig.serving
    to = previous_good(rig.driver.releases(), rig.driver.current())
    assert to is not None
    platform = rig.driver.platform
    rig.standin.fail(
        answer, method=ROLLBACK_METHOD[platform], path_contains=ROLLBACK_PATH[platform],
        body_contains="deploymentRollback" if platform == "railway" else None,
    )  # fmt: skip
    with pytest.raises(DriverError) as caught:
        rig.driver.rollback(to)
    for words in ANSWERS[answer]:
        assert words in str(caught.value)
    assert rig.serving == before
    no_secret_anywhere(caught.value)


def test_429_says_when_to_retry(rig: Rig) -> None:
    rig.standin.fail(429, headers={"Retry-After": "30"}, times=2)
    with pytest.raises(DriverError, match=r"Retry-After: 30"):
        rig.driver.releases()


def test_the_platform_s_own_error_text_is_quoted_without_secrets(rig: Rig) -> None:
    echo: dict[str, Any] = {"message": f"bad credentials Bearer {FAKE_TOKEN} for you"}
    rig.standin.fail(403, body=echo)
    with pytest.raises(DriverError) as caught:
        rig.driver.releases()
    assert "bad credentials" in str(caught.value)
    assert FAKE_TOKEN not in str(caught.value)


def test_an_unset_token_makes_the_driver_unavailable(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig.driver.preflight()
    monkeypatch.delenv("PD_TEST_TOKEN")
    with pytest.raises(DriverUnavailable, match=r"\$PD_TEST_TOKEN is not set"):
        rig.driver.preflight()
    with pytest.raises(DriverUnavailable, match=r"\$PD_TEST_TOKEN is not set"):
        rig.driver.releases()
    assert rig.standin.seen == [], "nothing is sent without a token"


def test_a_wrong_token_is_refused_by_the_stand_in_and_named(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
    no_secret_anywhere: Callable[..., None],
) -> None:
    monkeypatch.setenv("PD_TEST_TOKEN", "pdtest-WRONG-token-000000")
    with pytest.raises(DriverError, match=r"PD_TEST_TOKEN") as caught:
        rig.driver.releases()
    assert all(not seen.authorized for seen in rig.standin.seen)
    no_secret_anywhere(caught.value)


def test_every_request_carries_the_bearer_token(rig: Rig) -> None:
    rig.driver.releases()
    assert rig.standin.seen
    assert all(seen.authorized for seen in rig.standin.seen)


def test_plan_names_the_token_variable_never_the_token(
    rig: Rig,
    no_secret_anywhere: Callable[..., None],
) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    assert to is not None
    calls_before = len(rig.standin.seen)
    plan = [str(call) for call in rig.driver.plan(to)]
    assert len(rig.standin.seen) == calls_before, "plan() calls nothing"
    assert "$PD_TEST_TOKEN" in plan[0]
    no_secret_anywhere(*plan)


def test_a_read_is_tried_again_once_after_a_passing_error(rig: Rig) -> None:
    rig.standin.fail(503)
    assert rig.driver.releases()
    rig.standin.fail("timeout", times=2)
    with pytest.raises(DriverError, match="no answer"):
        rig.driver.releases()


def test_a_wait_rides_out_passing_platform_errors(rig: Rig, clock: FakeClock) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    assert to is not None
    new = rig.driver.rollback(to)
    rig.standin.fail(503, times=2)
    assert rig.driver.wait_until_serving(new, timeout_s=30)


def test_a_wait_gives_up_at_its_deadline(
    token: str,
    make_target: Callable[..., Target],
    clock: FakeClock,
) -> None:
    for name, make in RIGS.items():
        slow = make(make_target, clock, **{_POLLS[name]: 10_000})
        to = previous_good(slow.driver.releases(), slow.driver.current())
        new = slow.driver.rollback(to)
        started = clock.now
        assert slow.driver.wait_until_serving(new, timeout_s=5) is False
        assert 5 <= clock.now - started < 6, name


_POLLS = {"render": "polls_until_live", "railway": "polls_until_success",
          "gcp": "polls_until_done", "azure": "polls_until_done"}  # fmt: skip
