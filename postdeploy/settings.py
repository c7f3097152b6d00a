"""What every process of a run knows about it: the settings object and where it is kept.

The plugin builds a :class:`RunSettings` at configure time and keeps it on the config under
:data:`SETTINGS_KEY`; everything else (fixtures, the run controller, reporting) reads it from
there, so nothing imports the hook module to find it.
"""

from __future__ import annotations

import functools
import secrets as _random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from postdeploy.config import Target

#: suites/<folder>/ -> the category marker its tests get.
CATEGORY_FOLDERS = {
    "functional": "functional",
    "performance": "performance",
    "security": "security",
    "monitoring": "monitoring",
    "journeys": "journey",
}
#: Shorter environment values are not treated as secrets (too likely to match by chance).
MIN_SECRET_LENGTH = 8


def new_run_id() -> str:
    """A sortable, unique identifier: UTC time and four random hex digits."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + _random.token_hex(2)


def known_secrets(targets: Iterable[Target]) -> tuple[str, ...]:
    """The secret values these targets name (``Target.secret_values``), long enough that
    scrubbing them from whole files cannot hit ordinary text by chance; longest first, so a
    secret containing another one is replaced whole."""
    from postdeploy.redact import secret_parts

    found: set[str] = set()
    for target in targets:
        passwords = {
            urlsplit(url).password for url in (target.url, target.http_url) if url
        }  # a URL's password may be shorter than an environment secret
        for value in target.secret_values():
            if len(value) < (MIN_SECRET_LENGTH // 2 if value in passwords else MIN_SECRET_LENGTH):
                continue
            # and its parts: a message printing a URL's userinfo or one path token loses it
            found.update(secret_parts(value) if "://" in value else [value])
    return tuple(sorted(found, key=len, reverse=True))


@dataclass
class RunSettings:
    """What every process of a run (controller and xdist workers) knows about it."""

    run_id: str
    targets: dict[str, Target]
    targets_file: Path
    rollback: str
    expect_version: str | None
    reports_dir: Path
    rootdir: Path
    load_error: str | None = None
    notify: bool = True
    serving_versions: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def secrets(self) -> tuple[str, ...]:
        """The run's secrets, computed once (after the targets are selected)."""
        return known_secrets(self.targets.values())

    def marker_file(self, target: str) -> Path:
        """Exists once ``target`` was rolled back in this run (seen by every worker)."""
        return self.reports_dir / ".runs" / self.run_id / f"rolled-back-{target}"


SETTINGS_KEY = pytest.StashKey[RunSettings]()
#: On a collected item: the ``--quarantine`` entry (as written) that matched it.
QUARANTINED_KEY = pytest.StashKey[str]()


def settings_of(config: pytest.Config) -> RunSettings:
    """The run's settings (set by the plugin at configure time)."""
    return config.stash[SETTINGS_KEY]
