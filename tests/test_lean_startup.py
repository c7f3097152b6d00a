"""Lean start-up (issue 16): a run loads only the pytest plugins it needs, and collecting every
suite imports none of the heavy libraries that only some checks use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT_S = 120

#: Libraries imported where they are used, never by collecting the suites.
HEAVY = ("scipy", "schemathesis", "hypothesis", "locust", "gevent", "sslyze")
#: Plugins that install themselves and that no run needs.
UNWANTED_PLUGINS = ("schemathesis", "hypothesis", "locust", "anyio", "platformdirs")

#: A plugin of this test: after collection, the top-level modules imported and the plugins.
PROBE = """
import sys


def pytest_collection_finish(session):
    plugins = session.config.pluginmanager.list_name_plugin()
    names = {name for name, _ in plugins} | {getattr(p, "__name__", "") for _, p in plugins}
    names = {name for name in names if " " not in name}
    with open({out!r}, "w") as out:
        out.write("modules " + " ".join(sorted({m.split(".")[0] for m in sys.modules})) + "\\n")
        out.write("plugins " + " ".join(sorted(n for n in names if n)) + "\\n")
"""


def test_collecting_every_suite_loads_no_unneeded_plugin_or_heavy_library(tmp_path):
    out = tmp_path / "loaded.txt"
    (tmp_path / "lean_probe.py").write_text(PROBE.replace("{out!r}", repr(str(out))))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "lean_probe", "--target", "local", f"--reports-dir={tmp_path / 'reports'}"],
        cwd=REPO, env={**os.environ, "PYTEST_ADDOPTS": "", "PYTHONPATH": str(tmp_path),
                       "POSTDEPLOY_STATE_DIR": str(tmp_path / "state")},
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.read_text().splitlines())
    modules, plugins = set(lines["modules"].split()), set(lines["plugins"].split())
    assert not modules & set(HEAVY), f"collection imported {sorted(modules & set(HEAVY))}"
    assert not [p for p in plugins if any(u in p for u in UNWANTED_PLUGINS)], plugins
    # by the names they had when they loaded themselves (postdeploy finds allure-pytest by it)
    assert {"postdeploy", "allure_pytest", "xdist"} <= plugins, plugins
