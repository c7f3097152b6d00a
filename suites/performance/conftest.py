"""The performance suite's collection and its early start.

``test_the_release_is_not_worse_than_earlier_runs`` judges only with ``--compare-with``;
without it, it only stores the run's samples (``[canary] record_history``) and is skipped. A
check that cannot fail is no gate, and a gating check is re-run by a rollback's verification,
where storing the restored release's samples would only cost traffic - so the ``gating``
marker is given here, at collection, when the run asks for the comparison.

The load test's Locust process starts early (:func:`postdeploy.performance.load.hold_load`):
it imports Locust while other checks run and waits, sending nothing, for the test's go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from postdeploy.early import early_starts, needed

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.early import EarlyStarts
    from postdeploy.performance.load import HeldLoad

HISTORY_CHECK = "test_the_release_is_not_worse_than_earlier_runs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("postdeploy_compare_with", None) is None:
        return
    for item in items:
        if getattr(item, "originalname", "") == HISTORY_CHECK:
            item.add_marker(pytest.mark.gating)


def pytest_postdeploy_start_early(
    session: pytest.Session, target: Target, starts: EarlyStarts
) -> None:
    """Locust for the load test, if it is selected, started to wait for its go. Quiet: it
    sends the target nothing before the go, so the checks that run alone do not wait for it."""
    if not needed(session, "held_load"):
        return
    from postdeploy.performance.load import hold_load, load_run, release

    settings, out_dir = load_run(session.config, target)
    if not settings.workers:
        starts.start(
            f"locust:{target.name}", lambda: hold_load(settings, out_dir), discard=release,
            quiet=True,
        )  # fmt: skip


@pytest.fixture
def held_load(pytestconfig: pytest.Config, target: Target) -> HeldLoad | None:
    """The Locust process started early for this target's load test, if any. If starting it
    failed, None: the test starts Locust itself and meets the same trouble there, in its own
    call, as without an early start."""
    try:
        return early_starts(pytestconfig).take(f"locust:{target.name}", lambda: None)
    except Exception:
        return None
