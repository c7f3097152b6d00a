"""What the terminal shows of a run whose target does not answer: the reason once, not 100 times.

The session-scoped ``target`` fixture raises :class:`~postdeploy.gate.TargetUnreachable` for
every test of a target that does not answer, and pytest would print the same 40-line traceback
under each of them. Here:

* every such report carries the message alone (no traceback): it is the whole story, and it is
  what junit.xml, Allure and the verdict record for each test;
* the terminal prints it under the first test that met it (one ERROR entry per target), counts
  the others in their own ``unreachable`` category (letter ``E``, ``UNREACHABLE`` with ``-v``)
  and ends with one line per target saying how many more failed for the same reason;
* once every target of the run has been found unreachable, the progress output turns compact
  (as with ``-q``: letters, no file names), so the rest of the run takes a line or two instead
  of one line per suite file.

Every test stays a failed test: the exit status, junit.xml and verdict.json keep all of them.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from postdeploy.gate import TargetUnreachable
from postdeploy.redact import redact_text

if TYPE_CHECKING:
    from _pytest.reports import TestReport
    from _pytest.terminal import TerminalReporter

#: Report attribute naming the unreachable target (kept across xdist's report transport).
UNREACHABLE_ATTR = "postdeploy_unreachable"
#: The terminal category, letter and verbose word of the tests after the first.
CATEGORY = "unreachable"
LETTER = "E"
WORD = "UNREACHABLE"


def _target_key(item: pytest.Item, message: str) -> str:
    callspec = getattr(item, "callspec", None)
    name = callspec.params.get("target") if callspec is not None else None
    return str(name) if name is not None else message


@dataclass(eq=False)  # a plugin object: hashed by identity
class UnreachableOnce:
    """Shortens unreachable-target failures and folds the repeats in the terminal."""

    secrets: tuple[str, ...] = ()
    #: the run's targets: the output turns compact when all of them are unreachable
    targets: tuple[str, ...] = ()
    #: target -> node id of the first test reported unreachable (controller side)
    first: dict[str, str] = field(default_factory=dict)
    #: target -> node ids of the others
    repeats: dict[str, set[str]] = field(default_factory=dict)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, TestReport, TestReport]:
        report = yield
        excinfo = call.excinfo
        if not report.failed or excinfo is None or not excinfo.errisinstance(TargetUnreachable):
            return report
        short = excinfo.getrepr(style="value")  # the message, no traceback
        text = str(short)
        scrubbed = redact_text(text, self.secrets)
        report.longrepr = short if scrubbed == text else scrubbed
        setattr(report, UNREACHABLE_ATTR, _target_key(item, str(excinfo.value)))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(
        self, report: pytest.TestReport, config: pytest.Config
    ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        key = getattr(report, UNREACHABLE_ATTR, None)
        if key is None or not report.failed:
            return None
        if self.first.setdefault(key, report.nodeid) == report.nodeid:
            return None  # pytest reports the first one as usual, with its message
        self.repeats.setdefault(key, set()).add(report.nodeid)
        if self.targets and set(self.targets) <= set(self.first):
            self._compact(config)
        return CATEGORY, LETTER, (WORD, {"red": True})

    @staticmethod
    def _compact(config: pytest.Config) -> None:
        """Progress letters without a line per file (what ``-q`` shows), unless verbose."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and config.get_verbosity() <= 0 and reporter.showfspath:
            reporter.showfspath = False

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        for key, nodeids in sorted(self.repeats.items()):
            terminalreporter.write_sep(
                "=",
                f"{key} unreachable: {len(nodeids)} more test(s) failed for the reason shown "
                "above (each one is in junit.xml and verdict.json)",
                red=True,
            )
