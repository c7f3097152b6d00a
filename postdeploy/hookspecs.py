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
