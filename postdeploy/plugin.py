"""pytest hooks: options, markers, parametrize-by-target, wiring. The work lives elsewhere.

* ``postdeploy.config`` reads the targets, ``postdeploy.fixtures`` gives tests their nouns
  (``target``, ``api``, ``user``), ``postdeploy.run`` keeps the gate and rollback state of a
  run in the controller process only.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from postdeploy.config import DEFAULT_TARGETS_FILE, ConfigError, load_targets
from postdeploy.gate import (
    PROP_BACKEND,
    PROP_CATEGORY,
    PROP_GATING,
    PROP_KIND,
    PROP_TARGET,
    PROP_VERSION,
    Outcome,
    backend_of,
    classify,
)
from postdeploy.performance.load import load_profile_option, load_workers_option
from postdeploy.performance.options import compare_with_option
from postdeploy.rootdir import locate_targets_file
from postdeploy.settings import CATEGORY_FOLDERS, SETTINGS_KEY, RunSettings, new_run_id

if TYPE_CHECKING:
    from collections.abc import Generator

    from _pytest.reports import TestReport

# The nouns tests use; the browser ones (Playwright) import Playwright only when a test asks.
pytest_plugins = ["postdeploy.fixtures", "postdeploy.browser"]

DEFAULT_TARGET = "local"
TARGET_ENV = "POSTDEPLOY_TARGET"
DEFAULT_REPORTS_DIR = "reports"
ROLLBACK_MODES = ("off", "dry-run", "auto")

MARKERS = {
    "gating": "gating: a failure blocks promotion and may trigger a rollback",
    "functional": "functional: the application does what its contract says",
    "performance": "performance: response times, load, web vitals",
    "security": "security: TLS, headers, authentication, input handling",
    "monitoring": "monitoring: health, metrics, alerts, logs, error tracking",
    "journey": "journey: a complete user flow in a real browser",
    "load": "load: generates load against the target (bounded in users and time)",
    "slow": "slow: takes more than a few seconds",
    "rate_limit": "rate_limit: spends the target's rate limit on purpose; runs last",
    "alone": "alone: measures the target, so no background work of the run runs meanwhile",
    "first": "first: runs before the other checks of its kind (health: a release that is down "
    "is found, and rolled back, at once)",
    "last": "last: runs after the other checks of its kind, those that run alone included, "
    "because it waits for slow background work (Prometheus's first scrape) that they overlap",
}


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from postdeploy import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("postdeploy", "post-deployment validation (postdeploy)")
    group.addoption(
        "--target",
        dest="postdeploy_target",
        default=None,
        metavar="NAME[,NAME...]|all",
        help=f"Deployments to validate, from targets.toml (default: ${TARGET_ENV} or local)",
    )
    group.addoption(
        "--targets-file",
        dest="postdeploy_targets_file",
        default=None,
        metavar="PATH",
        help=f"Targets file (default: the nearest {DEFAULT_TARGETS_FILE} from here upward)",
    )
    if importlib.util.find_spec("pytest_base_url") is None:
        # pytest-base-url (pulled in by pytest-playwright) owns --base-url when installed;
        # its value is read the same way (dest "base_url").
        group.addoption(
            "--base-url",
            dest="base_url",
            default=None,
            metavar="URL",
            help="Validate this URL instead of the target's configured one (one target only)",
        )
    group.addoption(
        "--rollback",
        dest="postdeploy_rollback",
        default="off",
        choices=ROLLBACK_MODES,
        help="When a gate fails: off, dry-run (decide and record only) or auto (default: off)",
    )
    group.addoption(
        "--no-early-start",
        dest="postdeploy_no_early_start",
        action="store_true",
        help="Start no slow work in the background: every check does its own work when it "
        "runs (the reference of benchmarks/bench_time_to_verdict.py)",
    )
    group.addoption(
        "--expect-version",
        dest="postdeploy_expect_version",
        default=None,
        metavar="VERSION",
        help="The release that should now be serving",
    )
    group.addoption(
        "--reports-dir",
        dest="postdeploy_reports_dir",
        default=None,
        metavar="DIR",
        help=f"Where verdict.json, junit.xml, allure-results go (default: {DEFAULT_REPORTS_DIR})",
    )
    group.addoption(
        "--notify",
        dest="postdeploy_notify",
        default="on",
        choices=("on", "off"),
        help="Send the run's notifications to the targets' channels (default: on)",
    )
    group.addoption(
        "--quarantine",
        dest="postdeploy_quarantine",
        default=None,
        metavar="FILE",
        help="Checks known to be flaky (one node id or pattern a line): they run and are "
        "reported but never gate; a failing one is rerun once",
    )
    group.addoption(
        "--rerun",
        dest="postdeploy_reruns",
        type=int,
        default=0,
        metavar="N",
        help="Rerun every failing check up to N times; one that then passes is reported "
        "as flaky (default: 0)",
    )
    group.addoption(
        "--run-id",
        dest="postdeploy_run_id",
        default=None,
        help="Identifier of this run (default: generated); tags synthetic data",
    )
    group.addoption(
        "--load-profile",
        dest="postdeploy_load_profile",
        default=None,
        type=load_profile_option,
        metavar="NAME",
        help="Locust load profile: quick, smoke, capacity, baseline, stress, spike or soak "
        "(default: the target's [load] profile)",
    )
    group.addoption(
        "--load-workers",
        dest="postdeploy_load_workers",
        default=None,
        type=load_workers_option,
        metavar="N",
        help="Run Locust distributed: one master and N worker processes (default: the "
        "target's [load] workers, 0 = one process)",
    )
    group.addoption(
        "--baseline",
        dest="postdeploy_baseline",
        default=None,
        metavar="URL",
        help="The stable release the canary judge compares with (default: the target's "
        "baseline_url; one target only)",
    )
    group.addoption(
        "--compare-with",
        dest="postdeploy_compare_with",
        default=None,
        type=compare_with_option,
        metavar="previous[:K]",
        help="Judge the run against the last K passing runs in the history (default K: 1)",
    )
    group.addoption(
        "--history-dir",
        dest="postdeploy_history_dir",
        default=None,
        metavar="DIR",
        help="Where runs' samples are stored and read (default: history/ in the state dir)",
    )


def _load_settings(config: pytest.Config) -> RunSettings:
    option = config.option
    rootdir = Path(config.rootpath)
    explicit = option.postdeploy_targets_file or option.postdeploy_target
    targets_file = locate_targets_file(config, option.postdeploy_targets_file)
    workerinput = getattr(config, "workerinput", None)
    run_id = (
        workerinput["postdeploy_run_id"]
        if workerinput
        else option.postdeploy_run_id or new_run_id()
    )
    reports_dir = Path(option.postdeploy_reports_dir or rootdir / DEFAULT_REPORTS_DIR)
    settings = RunSettings(
        run_id=run_id,
        targets={},
        targets_file=targets_file,
        rollback=option.postdeploy_rollback,
        expect_version=option.postdeploy_expect_version,
        reports_dir=reports_dir,
        rootdir=rootdir,
        notify=option.postdeploy_notify == "on",
    )
    if not targets_file.exists() and not explicit:
        # Not a validation run (e.g. another project's tests): stay out of the way until a
        # test asks for a target.
        settings.load_error = (
            f"{targets_file}: file not found; create it (see the README) or pass --targets-file"
        )
        return settings
    spec = option.postdeploy_target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
    base_url = getattr(option, "base_url", None)
    try:
        selected = load_targets(targets_file).select(spec)
        if base_url:
            if len(selected) > 1:
                raise ConfigError(
                    f"--base-url applies to one target, but --target {spec} selects "
                    f"{len(selected)}; pass a single target with --base-url"
                )
            selected = [selected[0].with_url(base_url)]
        if option.postdeploy_baseline and len(selected) > 1:
            raise ConfigError(
                f"--baseline names the stable release of one target, but --target {spec} "
                f"selects {len(selected)} ({', '.join(t.name for t in selected)}); pass a single "
                "target with --baseline, or set each target's baseline_url in the targets file"
            )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    settings.targets = {t.name: t for t in selected}
    return settings


def _check_rollback(settings: RunSettings) -> None:
    """--rollback needs a working driver for every target: say so before any test runs."""
    from postdeploy.rollback import DriverUnavailable, preflight

    try:
        preflight(settings.targets.values(), settings.rollback)
    except DriverUnavailable as exc:
        raise pytest.UsageError(str(exc)) from None


def _runs_suites(config: pytest.Config) -> bool:
    """True when the run collects from a ``suites/`` folder (a validation run)."""
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = path if path.is_absolute() else Path(config.invocation_params.dir) / path
        if "suites" in path.resolve().parts:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS.values():
        config.addinivalue_line("markers", line)
    settings = _load_settings(config)
    config.stash[SETTINGS_KEY] = settings
    from postdeploy.reporting.terminal import UnreachableOnce

    unreachable = UnreachableOnce(settings.secrets, tuple(settings.targets))
    config.pluginmanager.register(unreachable, "postdeploy-unreachable")
    if settings.load_error or not _runs_suites(config):
        return
    # Strict markers in every validation run: a typo in a marker must not silently
    # take a check out of the gate.
    config.addinivalue_line("filterwarnings", "error::pytest.PytestUnknownMarkWarning")
    if config.option.collectonly:
        # Listing the checks runs none: it deploys nothing, starts nothing early, and leaves
        # the last run's reports (verdict, Allure results, JUnit XML) as they are.
        return
    # A validation run leaves its reports in the reports dir unless told otherwise.
    if getattr(config.option, "allure_report_dir", "unset") is None:
        config.option.allure_report_dir = str(settings.reports_dir / "allure-results")
        if not hasattr(config, "workerinput"):
            from postdeploy.reporting.allure_files import reset_results_dir

            reset_results_dir(Path(config.option.allure_report_dir))  # one run, one report
    if getattr(config.option, "xmlpath", "unset") is None and not hasattr(config, "workerinput"):
        config.option.xmlpath = str(settings.reports_dir / "junit.xml")
    from postdeploy import quarantine
    from postdeploy.reporting import allure_labels as allure

    quarantine.configure(config)
    allure.register(config, settings)
    if hasattr(config, "workerinput"):
        return
    from postdeploy.early import EARLY_STARTS_KEY, EarlyStarts

    # one process checks every target: it starts the slow work early (postdeploy/early.py)
    config.stash[EARLY_STARTS_KEY] = EarlyStarts(
        enabled=getattr(config.option, "numprocesses", None) in (None, 0)
        and not config.option.postdeploy_no_early_start
    )
    _check_rollback(settings)
    from postdeploy.run import ValidationRun

    config.pluginmanager.register(ValidationRun(config, settings), "postdeploy-run")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """xdist: workers share the controller's run id."""
    settings = node.config.stash[SETTINGS_KEY]  # type: ignore[attr-defined]
    node.workerinput["postdeploy_run_id"] = settings.run_id  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    settings = metafunc.config.stash[SETTINGS_KEY]
    if settings.load_error:
        raise pytest.UsageError(settings.load_error)
    names = list(settings.targets)
    metafunc.parametrize("target", names, indirect=True, ids=names, scope="session")


def _category(item: pytest.Item) -> str | None:
    parts = item.path.parts
    for index, part in enumerate(parts[:-1]):
        if part == "suites" and parts[index + 1] in CATEGORY_FOLDERS:
            return CATEGORY_FOLDERS[parts[index + 1]]
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        category = _category(item)
        if category:
            item.add_marker(category)
    # Gating checks first, the health checks first of all: a failing gate is found, and
    # rolled back, as early as possible; the rate-limit check last, so the limit it spends is
    # never met by another check. Of each group, the checks that must run alone come after
    # the others, and after them the checks marked last, which wait for slow early work that
    # runs quietly (it sends the target nothing those checks would measure): every other check
    # runs while it finishes in the background, rather than after waiting for it.
    items.sort(
        key=lambda item: (
            item.get_closest_marker("rate_limit") is not None,
            item.get_closest_marker("gating") is None,
            item.get_closest_marker("first") is None,
            item.get_closest_marker("last") is not None,
            item.get_closest_marker("alone") is not None,
        )
    )


def _target_name(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("target") if callspec else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("alone") is not None:
        from postdeploy.early import early_starts

        early_starts(item.config).wait_all()
    name = _target_name(item)
    if name is None:
        return
    settings = item.config.stash[SETTINGS_KEY]
    if settings.marker_file(name).exists():
        pytest.skip(
            f"target {name} was rolled back after a gating failure in this run; "
            "its remaining checks were not run against the rolled-back release"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, TestReport, TestReport]:
    report = yield
    name = _target_name(item)
    if name is None:
        return report
    kind = Outcome.PASSED
    if report.skipped:
        kind = Outcome.SKIPPED
    elif report.failed:
        kind = classify(call.excinfo) if call.excinfo else Outcome.FAILED
    settings = item.config.stash[SETTINGS_KEY]
    # A new list: the report shares item.user_properties, which outlives this phase.
    report.user_properties = [
        *report.user_properties,
        (PROP_TARGET, name),
        (PROP_GATING, item.get_closest_marker("gating") is not None),
        (PROP_CATEGORY, _category(item) or ""),
        (PROP_KIND, str(kind)),
        (PROP_VERSION, settings.serving_versions.get(name, "")),
    ]
    backend = backend_of(call.excinfo) if report.failed else ""
    if backend:
        report.user_properties.append((PROP_BACKEND, backend))
    if report.failed:
        from postdeploy.reporting.attachments import attach_exchanges

        attach_exchanges(item)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Early work nobody took is waited for and undone (a started server stopped)."""
    from postdeploy.early import early_starts

    early_starts(session.config).close()
