"""Quarantine and reruns: flaky checks still run and are reported, and are never hidden.

``--quarantine FILE`` names checks known to be flaky. A quarantined check runs like any other
and its outcome is reported (terminal summary, ``verdict.json``, junit, Allure, where it is
tagged ``quarantined`` and muted), but it never gates: its failure cannot fail a gate or
trigger a rollback.

Reruns: a failing quarantined check is rerun once; ``--rerun N`` reruns *every* failing check
up to N times (default 0: a non-quarantined failure counts at once, so a failing gate is
acted on as early as possible). A setup or call failure is rerun, a teardown failure is not.
A check that failed and then passed on a rerun is **flaky**: it counts as passed, and the
first attempt's failure is kept in ``verdict.json`` (``flaky``), in the terminal summary,
and in Allure (the failed attempt is a retry of the passed one, which is marked flaky).

The file: one entry a line; ``#`` starts a comment, and the comment on an entry's line is
its reason. An entry is a node id (``suites/x.py::test_y``, every parametrization of it), a
node id with parameters (``suites/x.py::test_y[fly]``), a test name (``test_y`` or
``test_y[fly]``), or any of these with ``*`` and ``?`` wildcards (brackets are literal)::

    suites/performance/test_load.py::test_p95_latency   # noisy on the free tier, issue 42
    test_health_check_pass_rate[render]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _pytest.runner import runtestprotocol

from postdeploy.gate import PROP_ATTEMPTS, PROP_FIRST_FAILURE, PROP_QUARANTINED, failure_message
from postdeploy.settings import QUARANTINED_KEY

if TYPE_CHECKING:
    from collections.abc import Generator

    from _pytest.reports import TestReport

#: Reruns of a failing quarantined check.
QUARANTINE_RERUNS = 1
#: Phases whose failure is rerun (a teardown failure is cleanup, not the check).
RERUN_PHASES = ("setup", "call")

#: On an item: the quarantine entry that matched it.
#: On the config: the loaded quarantine file.
QUARANTINE_FILE_KEY = pytest.StashKey["Quarantine"]()


class QuarantineError(Exception):
    """The quarantine file cannot be used; the message names the file and the fix."""


def _compile(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` are wildcards; everything else, brackets included, is literal."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))


@dataclass(frozen=True)
class Entry:
    pattern: str
    reason: str
    line: int
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def describe(self) -> str:
        return f"{self.pattern} ({self.reason})" if self.reason else self.pattern


def _candidates(item: pytest.Item) -> tuple[str, ...]:
    """What an entry may name: the node id, with and without parameters, and the test name."""
    nodeid = item.nodeid
    bare = nodeid.split("[", 1)[0]
    name = getattr(item, "name", "")
    original = getattr(item, "originalname", name)
    return (nodeid, bare, name, original)


@dataclass
class Quarantine:
    path: Path
    entries: list[Entry]
    used: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> Quarantine:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise QuarantineError(
                f"--quarantine {path}: file not found; create it (one check a line) or drop "
                "the option"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise QuarantineError(f"--quarantine {path}: cannot be read: {exc}") from None
        entries = []
        for number, raw in enumerate(text.splitlines(), start=1):
            spec, _, reason = raw.partition("#")
            spec = spec.strip()
            if not spec:
                continue
            if any(c.isspace() for c in spec):
                raise QuarantineError(
                    f"--quarantine {path}, line {number}: {spec!r} is not one check; write one "
                    "node id, test name or pattern a line (a reason goes after #)"
                )
            entries.append(Entry(spec, reason.strip(), number, _compile(spec)))
        return cls(path, entries)

    def entry_for(self, item: pytest.Item) -> Entry | None:
        candidates = _candidates(item)
        for entry in self.entries:
            if any(entry.regex.fullmatch(c) for c in candidates):
                self.used.add(entry.line)
                return entry
        return None

    def unused(self) -> list[Entry]:
        """Entries that matched no collected check (a typo, or a check that was removed)."""
        return [e for e in self.entries if e.line not in self.used]


class Reruns:
    """Marks quarantined checks and reruns failures, in the process that runs the tests."""

    def __init__(self, config: pytest.Config, quarantine: Quarantine | None, reruns: int) -> None:
        self.config = config
        self.quarantine = quarantine
        self.reruns = reruns

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if self.quarantine is None:
            return
        for item in items:
            entry = self.quarantine.entry_for(item)
            if entry is not None:
                item.stash[QUARANTINED_KEY] = entry.describe()

    def attempts(self, item: pytest.Item) -> int:
        if QUARANTINED_KEY in item.stash:
            return 1 + max(self.reruns, QUARANTINE_RERUNS)
        return 1 + self.reruns

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, TestReport, TestReport]:
        report = yield
        entry = item.stash.get(QUARANTINED_KEY, None)
        if entry is not None:
            report.user_properties = [*report.user_properties, (PROP_QUARANTINED, entry)]
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> bool | None:
        attempts = self.attempts(item)
        if attempts == 1:
            return None  # pytest's own protocol
        ihook = item.ihook
        first_failure = ""
        for attempt in range(1, attempts + 1):
            # One logstart/logfinish per attempt: Allure keeps each attempt as its own result
            # (the earlier ones as retries of the last).
            ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            failed = [r for r in reports if r.failed and r.when in RERUN_PHASES]
            if failed and attempt < attempts:
                first_failure = first_failure or failure_message(failed[0])
                ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
                continue
            for report in reports:
                if attempt > 1:
                    report.user_properties = [
                        *report.user_properties,
                        (PROP_ATTEMPTS, attempt),
                        (PROP_FIRST_FAILURE, first_failure),
                    ]
                ihook.pytest_runtest_logreport(report=report)
            if attempt > 1 and not any(r.failed for r in reports):
                ihook.pytest_postdeploy_flaky(
                    item=item, attempts=attempt, first_failure=first_failure
                )
            ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            break
        return True


def configure(config: pytest.Config) -> None:
    """Load ``--quarantine`` (a usage error when it cannot be used) and register the reruns."""
    raw = getattr(config.option, "postdeploy_quarantine", None)
    reruns = getattr(config.option, "postdeploy_reruns", 0) or 0
    if reruns < 0:
        raise pytest.UsageError(f"--rerun {reruns}: give 0 or a positive number of reruns")
    quarantine = None
    if raw:
        path = Path(raw)
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
            config.option.postdeploy_quarantine = str(path)  # xdist workers get it absolute
        try:
            quarantine = Quarantine.load(path)
        except QuarantineError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[QUARANTINE_FILE_KEY] = quarantine
    if quarantine is None and not reruns:
        return
    config.pluginmanager.register(Reruns(config, quarantine, reruns), "postdeploy-reruns")
