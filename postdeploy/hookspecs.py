"""postdeploy's own hooks, added to pytest's in ``pytest_addhooks`` (as xdist adds ``newhooks.py``).

The caller fires a hook and whoever cares implements it, so the module that notices something
does not import the modules that report it.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_postdeploy_flaky(item: pytest.Item, attempts: int, first_failure: str) -> None:
    """A check failed, then passed when it was run again (``attempts`` runs in all).

    Called in the process that ran the check, right after its passing attempt was reported and
    before its teardown is logged. ``first_failure`` is the first failure's redacted message.
    """


@pytest.hookspec
def pytest_postdeploy_start_early(session: pytest.Session, target: object, starts: object) -> None:
    """``target`` (a :class:`~postdeploy.config.Target`, ready: deployed, answering) is about
    to be checked: start in the background, with ``starts.start(key, work)``
    (:class:`~postdeploy.early.EarlyStarts`), the slow work that the *selected* checks of
    ``session`` will need, and take it in the fixture that needs it (``starts.take``).

    Called once per target, in a run without xdist workers only.
    """
