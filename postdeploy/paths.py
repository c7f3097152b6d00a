"""Where things are: the repository, the state, the reference app, the load and payload folders.

The one module that knows the repository's layout; every other module asks here. Each folder
can be moved with an environment variable (``POSTDEPLOY_STATE_DIR``, ``POSTDEPLOY_APP_DIR``,
``POSTDEPLOY_LOAD_DIR``, ``POSTDEPLOY_PAYLOADS_DIR``).
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "POSTDEPLOY_STATE_DIR"
APP_DIR_ENV = "POSTDEPLOY_APP_DIR"
LOAD_DIR_ENV = "POSTDEPLOY_LOAD_DIR"
PAYLOADS_DIR_ENV = "POSTDEPLOY_PAYLOADS_DIR"

#: The checkout this package lives in (postdeploy/ is one level below it).
REPO_ROOT = Path(__file__).resolve().parent.parent


def _configured(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else default


def state_dir() -> Path:
    """Local deployments, locks, the rollback ledger (default ``.postdeploy/``)."""
    return _configured(STATE_DIR_ENV, REPO_ROOT / ".postdeploy")


def app_dir() -> Path:
    """The folder that holds the reference app's ``learning_assistant`` package."""
    return _configured(APP_DIR_ENV, REPO_ROOT / "fixtures")


def load_dir() -> Path:
    """The Locust files and load plans."""
    return _configured(LOAD_DIR_ENV, REPO_ROOT / "load")


def user_cache_dir() -> Path:
    """What postdeploy keeps between runs for this user (Node's compile cache, generated fuzz
    cases): ``$XDG_CACHE_HOME/postdeploy``, else ``~/.cache/postdeploy``. Safe to delete."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "postdeploy"


def payloads_dir() -> Path:
    """The hostile-input corpus of the security suite."""
    return _configured(PAYLOADS_DIR_ENV, REPO_ROOT / "fixtures" / "payloads")
