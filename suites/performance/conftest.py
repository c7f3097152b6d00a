"""The performance suite's collection: the history check gates only when it judges.

``test_the_release_is_not_worse_than_earlier_runs`` judges only with ``--compare-with``;
without it, it only stores the run's samples (``[canary] record_history``) and is skipped. A
check that cannot fail is no gate, and a gating check is re-run by a rollback's verification,
where storing the restored release's samples would only cost traffic - so the ``gating``
marker is given here, at collection, when the run asks for the comparison.
"""

from __future__ import annotations

import pytest

HISTORY_CHECK = "test_the_release_is_not_worse_than_earlier_runs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("postdeploy_compare_with", None) is None:
        return
    for item in items:
        if getattr(item, "originalname", "") == HISTORY_CHECK:
            item.add_marker(pytest.mark.gating)
