"""Allure results, enriched for the people who read the report rather than the code.

Every process that runs tests (the only one, or each xdist worker) labels each check:
``epic`` = its category (the suites/ folder), ``feature`` = the checklist item it implements
(from its module docstring, ``"<Category> testing - <Checklist item>: ..."``), ``severity``
from its markers (``gating`` -> blocker, else normal; an explicit ``@allure.severity`` wins),
``target`` = the deployment, and the tag ``quarantined`` when ``--quarantine`` names it. Its
Allure status follows the gate's classification (an unreachable target or a transport error
is *failed*, like an assertion, not *broken*), and every failure gets a "What failed"
attachment next to the recorded HTTP exchange.

The files next to the results (environment, executor, categories) and the final scrub of
secrets are in ``postdeploy.reporting.allure_files``; the HTML build in
``postdeploy.reporting.html``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pytest

from postdeploy.gate import Outcome, classify, failure_message
from postdeploy.redact import redact_text, redact_url
from postdeploy.reporting.allure_files import UNREACHABLE_TEXT
from postdeploy.settings import CATEGORY_FOLDERS, QUARANTINED_KEY

if TYPE_CHECKING:
    from collections.abc import Generator

    from pluggy import Result

    from postdeploy.config import Target
    from postdeploy.settings import RunSettings

#: Allure's label for the marker it reads labels from (allure_pytest.utils).
LABEL_MARK = "allure_label"
SEVERITY_BY_MARKER = (("gating", "blocker"),)
DEFAULT_SEVERITY = "normal"
TARGET_LABEL = "target"
QUARANTINED_TAG = "quarantined"
#: The words that separate category and checklist item in a suite module's docstring.
CHECKLIST_SEPARATOR = " - "

# -- what the report needs to know about a check --------------------------------------------


def checklist_item(item: pytest.Item) -> str:
    """The checklist item a suite module implements.

    ``"Authentication"`` from the docstring ``"Functional testing - Authentication: ..."``;
    the module name when the docstring does not follow that form.
    """
    module = getattr(item, "module", None)
    doc = (getattr(module, "__doc__", None) or "").strip().splitlines()
    first = doc[0] if doc else ""
    if CHECKLIST_SEPARATOR in first:
        first = first.split(CHECKLIST_SEPARATOR, 1)[1]
    first = first.split(":", 1)[0].strip().rstrip(".")
    if first:
        return first
    return item.path.stem.removeprefix("test_").replace("_", " ").capitalize()


def severity(item: pytest.Item) -> str:
    for marker, level in SEVERITY_BY_MARKER:
        if item.get_closest_marker(marker) is not None:
            return level
    return DEFAULT_SEVERITY


def _has_label(item: pytest.Item, label_type: str) -> bool:
    return any(m.kwargs.get("label_type") == label_type for m in item.iter_markers(LABEL_MARK))


def _label(item: pytest.Item, label_type: str, value: str) -> None:
    if value and not _has_label(item, label_type):
        item.add_marker(getattr(pytest.mark, LABEL_MARK)(value, label_type=label_type))


def _current_result(config: pytest.Config) -> Any:
    """The Allure test result being written in this process, or None without Allure."""
    listener = config.pluginmanager.get_plugin("allure_listener")
    logger = getattr(listener, "allure_logger", None)
    if logger is None:
        return None
    with contextlib.suppress(Exception):
        return logger.get_test(None)
    return None


def _status_details(result: Any) -> Any:
    from allure_commons.model2 import StatusDetails

    if result.statusDetails is None:
        result.statusDetails = StatusDetails()
    return result.statusDetails


def mark_flaky(config: pytest.Config, attempts: int, first_failure: str) -> None:
    """Flag the current Allure result flaky: it passed on attempt ``attempts`` after failing."""
    result = _current_result(config)
    if result is None:
        return
    details = _status_details(result)
    details.flaky = True
    details.message = redact_text(
        f"flaky: failed, then passed on attempt {attempts}. First failure: {first_failure}"
    )


def what_failed(
    item: pytest.Item,
    report: Any,
    kind: Outcome,
    target: Target | None,
    settings: RunSettings,
    secrets: tuple[str, ...] = (),
) -> str:
    """One page that explains a failure to someone who does not read the code."""
    message = failure_message(report)
    if kind is Outcome.BROKEN:
        meaning = "broken: an exception inside postdeploy; the target was not judged"
    elif UNREACHABLE_TEXT in message:
        meaning = "failed: the target is unreachable"
    else:
        meaning = "failed: a product defect (the deployment did not behave as expected)"
    quarantine = item.stash.get(QUARANTINED_KEY, None)
    if quarantine is not None:
        gate = f"no: quarantined ({quarantine}); reported, never gates"
    elif item.get_closest_marker("gating") is not None:
        gate = "yes: a failure fails the gate, blocks promotion and may roll the target back"
    else:
        gate = "no: reported only"
    lines = [
        f"check:           {item.name}",
        f"checklist item:  {checklist_item(item)}",
        f"outcome:         {meaning}",
        f"phase:           {report.when}",
        f"gating:          {gate}",
    ]
    if target is not None:
        lines += [
            f"target:          {target.name} ({target.platform}) at {redact_url(target.url)}",
            f"serving version: {settings.serving_versions.get(target.name) or 'unknown'}",
            f"expected:        {settings.expect_version or 'not given (--expect-version)'}",
        ]
    lines += [
        "",
        f"message: {message}",
        "",
        f'reproduce: pytest "{item.nodeid}"'
        + (f" --target {target.name}" if target is not None else ""),
    ]
    return redact_text("\n".join(lines), secrets)


class FailureScrub:
    """Innermost makereport wrapper: a failure's text loses every secret this run knows
    before junit, Allure and the terminal read it."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = secrets

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_makereport(self) -> Generator[None, Result[Any], None]:
        outcome = yield
        report = outcome.get_result()
        if report.failed and report.longrepr is not None and self.secrets:
            text = str(report.longrepr)
            scrubbed = redact_text(text, self.secrets)
            if scrubbed != text:
                report.longrepr = scrubbed


class AllureEnricher:
    """Labels and the quarantine mark for the Allure results written in this process."""

    def __init__(self, config: pytest.Config, settings: RunSettings) -> None:
        self.config = config
        self.settings = settings

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        categories = tuple(CATEGORY_FOLDERS.values())
        for item in items:
            category = next((c for c in categories if item.get_closest_marker(c)), "")
            _label(item, "epic", category)
            _label(item, "feature", checklist_item(item))
            _label(item, "severity", severity(item))
            callspec = getattr(item, "callspec", None)
            if callspec is not None and "target" in callspec.params:
                _label(item, TARGET_LABEL, str(callspec.params["target"]))
            if QUARANTINED_KEY in item.stash:
                _label(item, "tag", QUARANTINED_TAG)

    def pytest_postdeploy_flaky(self, attempts: int, first_failure: str) -> None:
        mark_flaky(self.config, attempts, first_failure)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        yield
        if QUARANTINED_KEY in item.stash:
            result = _current_result(self.config)
            if result is not None:
                _status_details(result).known = True


class AllureStatus:
    """Outermost makereport wrapper: runs after Allure has set the result's status."""

    def __init__(self, config: pytest.Config, settings: RunSettings) -> None:
        self.config = config
        self.settings = settings
        self.secrets = settings.secrets

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Result[Any], None]:
        outcome = yield
        report = outcome.get_result()
        if not report.failed or call.excinfo is None:
            return
        kind = classify(call.excinfo)
        result = _current_result(self.config)
        if result is not None:
            from allure_commons.model2 import Status

            if kind is Outcome.FAILED and result.status == Status.BROKEN:
                result.status = Status.FAILED
        import allure

        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("target") if callspec is not None else None
        target = self.settings.targets.get(str(name)) if name is not None else None
        allure.attach(
            what_failed(item, report, kind, target, self.settings, self.secrets),
            name="What failed",
            attachment_type=allure.attachment_type.TEXT,
        )


def allure_active(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None)) and (
        config.pluginmanager.get_plugin("allure_pytest") is not None
    )


def register(config: pytest.Config, settings: RunSettings) -> None:
    """Wire the scrub into this process, and the enrichment when Allure results are written."""
    secrets = settings.secrets
    config.pluginmanager.register(FailureScrub(secrets), "postdeploy-failure-scrub")
    if not allure_active(config):
        return
    config.pluginmanager.register(AllureEnricher(config, settings), "postdeploy-allure")
    config.pluginmanager.register(AllureStatus(config, settings), "postdeploy-allure-status")
