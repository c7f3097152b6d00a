"""The App Service driver against the ARM stand-in: swap the staging slot back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdeploy.config import Target
from postdeploy.rollback.azure import API_VERSION
from postdeploy.rollback.base import DriverError, previous_good
from tests.rollback.rigs import Rig, azure_rig
from tests.standins._base import FakeClock


@pytest.fixture
def rig(token: str, make_target: Callable[..., Target], clock: FakeClock) -> Rig:
    return azure_rig(make_target, clock)


def test_releases_are_the_production_and_staging_slots(rig: Rig) -> None:
    production, staging = rig.driver.releases()
    assert (production.id, production.ref, production.can_rollback) == (
        "production", "DOCKER|acr.test/la:2.0", False,
    )  # fmt: skip
    assert (staging.id, staging.ref, staging.version, staging.can_rollback) == (
        "staging", "DOCKER|acr.test/la:1.9", "1.9", True,
    )  # fmt: skip
    assert all(s.params == {"api-version": API_VERSION} for s in rig.standin.seen)


def test_previous_good_is_the_staging_slot(rig: Rig) -> None:
    assert previous_good(rig.driver.releases(), rig.driver.current()).id == "staging"


def test_rollback_swaps_the_slots_back_and_follows_the_operation(rig: Rig) -> None:
    to = previous_good(rig.driver.releases(), rig.driver.current())
    new = rig.driver.rollback(to)
    swap = rig.standin.calls("POST")[0]
    assert swap.path.endswith("/sites/learning-assistant/slots/staging/slotsswap")
    assert swap.params == {"api-version": API_VERSION}
    assert swap.body == {"targetSlot": "production", "preserveVnet": True}
    assert rig.serving == "DOCKER|acr.test/la:2.0", "202: the swap is still running"
    assert rig.driver.wait_until_serving(new, timeout_s=30)
    assert rig.serving == "DOCKER|acr.test/la:1.9"
    assert any("/operationresults/" in s.path for s in rig.standin.seen)


def test_a_swap_that_takes_a_while_is_waited_for(
    token: str, make_target: Callable[..., Target], clock: FakeClock
) -> None:
    rig = azure_rig(make_target, clock, polls_until_done=4)
    new = rig.driver.rollback(rig.driver.releases()[1])
    assert rig.driver.wait_until_serving(new, timeout_s=30)
    assert clock.slept == 3


def test_the_token_is_not_sent_to_a_polling_url_on_another_host(
    token: str, make_target: Callable[..., Target], clock: FakeClock
) -> None:
    rig = azure_rig(make_target, clock, location_host="https://evil.example.test")
    with pytest.raises(DriverError, match=r"does not send the token there"):
        rig.driver.rollback(rig.driver.releases()[1])
    assert all(s.path.startswith("/subscriptions/") for s in rig.standin.seen)


def test_only_the_configured_slot_is_swapped_in(rig: Rig) -> None:
    with pytest.raises(DriverError, match=r"not that slot"):
        rig.driver.rollback(rig.driver.releases()[0])


def test_a_stopped_staging_slot_is_not_swapped_in(rig: Rig) -> None:
    rig.standin.state["staging"] = "Stopped"
    with pytest.raises(DriverError, match=r"staging .* is Stopped; start it"):
        rig.driver.rollback(rig.driver.releases()[1])


def test_another_operation_in_progress_is_a_409(rig: Rig) -> None:
    staging = rig.driver.releases()[1]
    rig.driver.rollback(staging)
    with pytest.raises(DriverError, match=r"409 Conflict .*another operation is in progress"):
        rig.driver.rollback(staging)
