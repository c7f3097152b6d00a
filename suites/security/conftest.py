"""Fixtures of the security suite: the expensive things, done once per target and run.

* ``tls_report``: the run's one sslyze scan of the target (shared by xdist workers through a
  file in the run's directory); the full scan result is attached to the report as JSON.
* ``security_users``: synthetic users for the whole session, deleted at its end.
* ``header_samples``: one GET of every page and of a sample of API answers, for the header
  requirements (each checked against every sampled URL).
* ``input_answers``: the hostile-input corpus sent to every input of the contract.
* ``fuzz_report``: schemathesis over the target's OpenAPI document.

The TLS scan, the suite's users and the hostile traffic start early, in the background, when
the selected checks need them (``pytest_postdeploy_start_early``, postdeploy/early.py).

Deploy-misconfiguration checks carry ``@pytest.mark.deploy_check("class")``; the classes the
target lists in ``security.gating_checks`` are made ``gating`` for that target here, before
the plugin orders gating checks first and ``-m gating`` selects.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from postdeploy.contract import (
    PAGES,
    PATHS,
    PROTECTED_ROUTES,
    SESSION_COOKIE,
    SESSION_ENDING_ROUTES,
)
from postdeploy.early import early_starts, needed
from postdeploy.http import new_client
from postdeploy.paths import user_cache_dir
from postdeploy.reporting.attachments import attach_json
from postdeploy.security.headers import Headers
from postdeploy.sysutil import outcome
from postdeploy.users import SYNTHETIC_DOMAIN, SYNTHETIC_PREFIX, SyntheticUser, UserFactory

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.early import EarlyStarts
    from postdeploy.security.auth import ShortLivedLogin
    from postdeploy.security.fuzz import FuzzReport
    from postdeploy.security.input_validation import Answer
    from postdeploy.security.tls import TlsReport


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "deploy_check(name): a deploy-misconfiguration check of class NAME; it gates for the "
        "targets whose security.gating_checks list NAME",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark deploy checks ``gating`` for the targets that say so (security.gating_checks)."""
    from postdeploy.plugin import SETTINGS_KEY
    from postdeploy.security.gating import MARKER, GatingConfigError, gating_checks

    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None or settings.load_error:
        return
    gating: dict[str, frozenset[str]] = {}
    for item in items:
        marker = item.get_closest_marker(MARKER)
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("target") if callspec else None
        if marker is None or name not in settings.targets:
            continue
        if name not in gating:
            try:
                gating[name] = gating_checks(settings.targets[name])
            except GatingConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        if marker.args[0] in gating[name]:
            item.add_marker(pytest.mark.gating)


#: The hostile-input corpus, and the fuzz checks, may each spend 1/N of the target's
#: registrations per window (limits.registrations_per_window); their other registration probes
#: are left out.
CORPUS_REGISTRATION_SHARE = 10
#: The fuzzing process's whole run at most (its requests each have the target's timeouts).
FUZZ_TIMEOUT_S = 300.0
#: Where the cases generated for a document are kept (in the user's cache: ``fuzz_cache``).
FUZZ_CASES_DIR = "fuzz-cases"
#: Answers sampled for the header requirements, besides the pages: JSON, an error, a 401.
API_SAMPLES = (PATHS.health, PATHS.content, PATHS.lesson(1), "/postdeploy-no-such-page", PATHS.me)


@pytest.fixture(scope="session")
def tls_report(pytestconfig: pytest.Config, target: Target, run_id: str) -> TlsReport:
    """The run's one TLS scan of ``target`` (the first process to ask scans, others read it)."""
    report = early_starts(pytestconfig).take(
        f"tls:{target.name}", lambda: _scan(pytestconfig, target)
    )
    attach_json(f"sslyze scan of {report.where}", report.scan_json or report.to_json())
    return report


@dataclass
class SessionUsers:
    """Synthetic users shared by the suite's session fixtures, deleted at the end."""

    factory: UserFactory
    main: SyntheticUser

    def new_email(self) -> str:
        """An address no account has (and none will get: it is only ever refused)."""
        return f"{SYNTHETIC_PREFIX}{self.factory.run_id}-{secrets.token_hex(4)}@{SYNTHETIC_DOMAIN}"

    def adopt(self, email: str, password: str) -> None:
        """An account a hostile request created after all: delete it with the others."""
        self.factory.created.append(SyntheticUser(email, password, "created by a probe"))

    def close(self) -> None:
        self.factory.cleanup()
        self.factory.client.close()


def _session_users(target: Target, run_id: str) -> SessionUsers:
    from postdeploy.accounts import pool_for

    client = new_client(target)
    factory = UserFactory(client, run_id, pool_for(target, run_id, client))
    return SessionUsers(factory, factory())


@pytest.fixture(scope="session")
def security_users(
    pytestconfig: pytest.Config, target: Target, run_id: str
) -> Iterator[SessionUsers]:
    """The suite's main user: a pooled account held for the whole session."""
    users = early_starts(pytestconfig).take(
        f"security-users:{target.name}", lambda: _session_users(target, run_id)
    )
    yield users
    users.close()


@dataclass(frozen=True)
class Sample:
    url: str
    status: int
    headers: Headers
    set_cookies: list[str]


@pytest.fixture(scope="session")
def header_samples(target: Target) -> list[Sample]:
    """One GET of every page and of a few API answers (a JSON body, a 404, a 401)."""
    samples = []
    with new_client(target) as client:
        for path in (*PAGES, *API_SAMPLES):
            response = client.get(path)
            samples.append(
                Sample(
                    str(response.url),
                    response.status_code,
                    Headers(response.headers.multi_items()),
                    response.headers.get_list("set-cookie"),
                )
            )
    return samples


@dataclass
class HostileTraffic:
    """What the corpus and schemathesis got: results, or the exception that stopped them."""

    answers: list[Answer] | BaseException | None = None
    fuzz: FuzzReport | BaseException | None = None


def _send_corpus(target: Target, users: SessionUsers) -> list[Answer]:
    from postdeploy.security.input_validation import (
        fit_registrations,
        hostile_requests,
        load_corpus,
        send_all,
    )

    every = hostile_requests(load_corpus(), users.new_email, users.main.email)
    # a share of the target's registrations per window; the rest are the checks' own users
    allowed = int(target.limits.registrations_per_window) // CORPUS_REGISTRATION_SHARE
    to_send, _left_out = fit_registrations(every, allowed, users.main.email)
    with new_client(target) as client:
        answers = send_all(client, to_send, users.main.auth, max(1, int(target.concurrency)))
    for answer in answers:
        if answer.request.account and answer.status == 201:
            users.adopt(*answer.request.account)
    return answers


def _fresh_email_format(fresh: str) -> str:
    """``pd-RUN-abc@example.com`` -> ``pd-RUN-abc-login{}@example.com``: a fresh address of
    the run for each numbered case."""
    local, domain = fresh.rsplit("@", 1)
    return f"{local}-login{{}}@{domain}"


def _run_fuzz(target: Target, users: SessionUsers) -> FuzzReport:
    from postdeploy.expect import expect_status, json_body
    from postdeploy.security.fuzz import FuzzPlan
    from postdeploy.security.fuzz_process import fuzz_in_process

    with new_client(target) as client:
        document = client.get(PATHS.openapi)
        expect_status(document, 200, what="fetching the OpenAPI document")
    plan = FuzzPlan(
        auth_headers=users.main.auth,
        protected=frozenset(PROTECTED_ROUTES),
        destructive=frozenset(SESSION_ENDING_ROUTES),
        registration=("POST", PATHS.register),
        existing_email=users.main.email,
        login=("POST", PATHS.login),
        login_email=_fresh_email_format(users.new_email()),
        # as much of the registrations per window as the corpus spends
        max_registrations=max(
            1, int(target.limits.registrations_per_window) // CORPUS_REGISTRATION_SHARE
        ),
        cookies={SESSION_COOKIE: "unused"},
    )
    # In a process of its own: it mostly generates cases, in Python, beside the checks
    return fuzz_in_process(
        target,
        json_body(document),
        plan,
        examples=int(target.security.fuzz_examples),
        on_account=users.adopt,
        timeout_s=FUZZ_TIMEOUT_S,
        # the cases generated for this document are kept for its next run (fuzz_cache)
        cache_dir=user_cache_dir() / FUZZ_CASES_DIR,
    )


def _hostile(session: pytest.Session, target: Target, users: SessionUsers) -> HostileTraffic:
    """The corpus and schemathesis, each only if a selected test needs it.

    They overlap: the corpus mostly waits on the target, so it runs in a background thread
    while schemathesis, which mostly generates cases, runs in this one.
    """
    traffic = HostileTraffic()
    with ThreadPoolExecutor(max_workers=1) as background:
        corpus = None
        if needed(session, "input_answers"):
            corpus = background.submit(outcome, lambda: _send_corpus(target, users))
        if needed(session, "fuzz_report"):
            traffic.fuzz = outcome(lambda: _run_fuzz(target, users))
        if corpus is not None:
            traffic.answers = corpus.result()
    return traffic


@pytest.fixture(scope="session")
def hostile_traffic(
    request: pytest.FixtureRequest, target: Target, security_users: SessionUsers
) -> HostileTraffic:
    """The corpus and schemathesis, once per run (started early when the run can)."""
    return early_starts(request.config).take(
        f"hostile:{target.name}", lambda: _hostile(request.session, target, security_users)
    )


def _scan(config: pytest.Config, target: Target) -> TlsReport:
    from postdeploy.security.tls_process import cached_scan_in_process
    from postdeploy.settings import settings_of

    settings = settings_of(config)
    return cached_scan_in_process(target, settings.reports_dir / ".runs" / settings.run_id)


def _short_lived(target: Target, run_id: str) -> ShortLivedLogin:
    from postdeploy.accounts import pool_for
    from postdeploy.security.auth import short_lived_login as log_in

    with new_client(target) as client:
        factory = UserFactory(client, run_id, pool_for(target, run_id, client))
        try:
            return log_in(target, factory())
        finally:
            factory.cleanup()


@pytest.fixture(scope="session")
def short_lived_login(pytestconfig: pytest.Config, target: Target, run_id: str) -> ShortLivedLogin:
    """A pooled user's login for a short-lived token (started early: its lifetime runs out
    while other checks run)."""
    return early_starts(pytestconfig).take(
        f"short-lived:{target.name}", lambda: _short_lived(target, run_id)
    )


def pytest_postdeploy_start_early(
    session: pytest.Session, target: Target, starts: EarlyStarts
) -> None:
    """In the background: the TLS scan, the short-lived login, and the users and hostile
    traffic of the input checks."""
    from postdeploy.settings import settings_of

    config = session.config
    run_id = settings_of(config).run_id
    if needed(session, "tls_report"):
        starts.start(f"tls:{target.name}", lambda: _scan(config, target))
    if needed(session, "short_lived_login"):
        starts.start(f"short-lived:{target.name}", lambda: _short_lived(target, run_id))
    if not (needed(session, "input_answers") or needed(session, "fuzz_report")):
        return
    users = starts.start(
        f"security-users:{target.name}",
        lambda: _session_users(target, run_id),
        discard=SessionUsers.close,
    )
    if users is not None:  # a failure to make them is raised again to the checks that need them
        starts.start(f"hostile:{target.name}", lambda: _hostile(session, target, users.result()))


@pytest.fixture(scope="session")
def input_answers(hostile_traffic: HostileTraffic) -> list[Answer]:
    """Every payload of the corpus against every input of the contract, answered."""
    answers = hostile_traffic.answers
    if isinstance(answers, BaseException):
        raise answers
    assert answers is not None
    return answers


@pytest.fixture(scope="session")
def fuzz_report(hostile_traffic: HostileTraffic) -> FuzzReport:
    """schemathesis over ``/openapi.json``, bounded by ``security.fuzz_examples``."""
    report = hostile_traffic.fuzz
    if isinstance(report, BaseException):
        raise report
    assert report is not None
    return report
