"""Browser fixtures for the journeys (Playwright; Chromium launched by postdeploy)."""

from __future__ import annotations

import pytest

from postdeploy import browser

BROWSER_PLUGIN = "postdeploy-browser"


def pytest_configure(config: pytest.Config) -> None:
    # One registration for every suite that needs a browser: one Playwright driver and one
    # Chromium per target, however many of these folders run.
    if not config.pluginmanager.has_plugin(BROWSER_PLUGIN):
        config.pluginmanager.register(browser, BROWSER_PLUGIN)
