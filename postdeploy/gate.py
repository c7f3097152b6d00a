"""The gate: a verdict per target from the outcomes of its tests.

* A test that failed an assertion, or found the target unreachable, **failed**: the product is
  wrong. A gating test that failed fails the gate.
* A test that raised anything else is **broken**: the harness, not the product, went wrong.
  A broken gating test makes the gate **inconclusive**; it never triggers a rollback.
  :class:`BackendError` is that case named: a system the harness runs or asks about the target
  (Prometheus, Alertmanager, Sentry, Loki, the browser, Locust, the local platform's set-up)
  failed, and the verdict says which and how. It is never an AssertionError, and a back end's
  client wraps its transport errors into it, so they never reach a check as a bare
  ``httpx.TransportError`` (which counts as the *target* not answering).
* A gate with no gating test executed is **inconclusive**, never passed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import httpx

from postdeploy.redact import redact_text

if TYPE_CHECKING:
    import pytest
    from _pytest.reports import TestReport

#: Keys under which a test report carries postdeploy facts (``report.user_properties``).
PROP_TARGET = "postdeploy_target"
PROP_GATING = "postdeploy_gating"
PROP_KIND = "postdeploy_kind"
PROP_CATEGORY = "postdeploy_category"
PROP_VERSION = "postdeploy_serving_version"
#: The quarantine entry that matched the test (``--quarantine``); it then never gates.
PROP_QUARANTINED = "postdeploy_quarantined"
#: How many times the test ran (more than 1 when a failure was rerun).
PROP_ATTEMPTS = "postdeploy_attempts"
#: The failure of the first attempt when the test was rerun.
PROP_FIRST_FAILURE = "postdeploy_first_failure"
#: A canary judgement of the test (``postdeploy.performance.judge.Judgement.to_dict``).
PROP_CANARY = "postdeploy_canary"
#: The back end that failed a broken test, ``"system: how"`` (:class:`BackendError`).
PROP_BACKEND = "postdeploy_backend"
#: Longest failure message kept in the verdict.
MAX_MESSAGE = 2000


class TargetUnreachable(Exception):
    """The target did not answer at all; a product failure, reported once and fast."""


#: How a back end failed (:attr:`BackendError.how`).
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
REFUSED = "refused the credentials"
SERVER_ERROR = "server error"
HTTP_ERROR = "HTTP error"
UNPARSEABLE = "unparseable answer"
MISCONFIGURED = "misconfigured"
SETUP_FAILED = "set-up failed"
#: First status of the server-error range.
FIRST_SERVER_ERROR = 500
REFUSED_STATUSES = (401, 403)


class BackendError(Exception):
    """A system the harness asks about the target, or runs itself, failed: the check is
    *broken* (the gate inconclusive, never a rollback), and the verdict names ``system`` and
    ``how`` (one of the constants above). Never an AssertionError."""

    def __init__(self, message: str, *, system: str, how: str) -> None:
        super().__init__(message)
        self.system = system
        self.how = how

    def label(self) -> str:
        """``"Prometheus: unreachable"``: which system failed and how."""
        return f"{self.system}: {self.how}"


def http_failure(status: int) -> str:
    """How a back end failed from its HTTP status (401/403, 5xx, any other)."""
    if status in REFUSED_STATUSES:
        return REFUSED
    return SERVER_ERROR if status >= FIRST_SERVER_ERROR else HTTP_ERROR


def transport_failure(exc: BaseException) -> str:
    """How a back end failed from an httpx transport error: timeout or unreachable."""
    return TIMEOUT if isinstance(exc, httpx.TimeoutException) else UNREACHABLE


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    BROKEN = "broken"
    SKIPPED = "skipped"


class Gate(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


#: Exceptions that mean "the target is wrong" rather than "the harness is wrong".
PRODUCT_FAILURES: tuple[type[BaseException], ...] = (
    AssertionError,
    TargetUnreachable,
    httpx.TransportError,
)


def classify(excinfo: pytest.ExceptionInfo[BaseException]) -> Outcome:
    """failed for assertion-like and transport failures, broken for anything else (always
    for a :class:`BackendError`, whatever it wraps)."""
    import pytest

    if excinfo.errisinstance(BackendError):
        return Outcome.BROKEN
    if excinfo.errisinstance(PRODUCT_FAILURES) or excinfo.errisinstance(pytest.fail.Exception):
        return Outcome.FAILED
    if excinfo.errisinstance(pytest.skip.Exception):
        return Outcome.SKIPPED
    return Outcome.BROKEN


def backend_of(excinfo: pytest.ExceptionInfo[BaseException] | None) -> str:
    """``"system: how"`` when the exception is a :class:`BackendError`, else empty."""
    if excinfo is not None and isinstance(excinfo.value, BackendError):
        return excinfo.value.label()
    return ""


def failure_message(report: TestReport) -> str:
    """What a failed report says, in one line where pytest has one (the crash message),
    redacted; at most :data:`MAX_MESSAGE` characters of the long form otherwise."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message) if crash is not None else str(report.longrepr or "")[-MAX_MESSAGE:]
    return redact_text(text)


@dataclass
class Failure:
    test: str
    kind: Outcome
    gating: bool
    phase: str
    message: str
    #: for a broken check, the back end that failed and how (``"Prometheus: unreachable"``)
    backend: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "test": self.test,
            "kind": str(self.kind),
            "gating": self.gating,
            "phase": self.phase,
            "message": self.message,
        }
        if self.backend:
            data["backend"] = self.backend
        return data


@dataclass
class TargetResults:
    """Everything the gate needs to know about one target's tests."""

    name: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    gating: set[str] = field(default_factory=set)
    categories: dict[str, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    gating_selected: int = 0
    #: quarantined test -> the quarantine entry that matched it
    quarantined: dict[str, str] = field(default_factory=dict)
    #: rerun test -> (attempts, the first attempt's failure)
    reruns: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: canary judgements made against this target, each with the test that made it
    canary: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self,
        nodeid: str,
        outcome: Outcome,
        *,
        gating: bool,
        category: str = "",
        phase: str = "call",
        message: str = "",
        backend: str = "",
    ) -> None:
        """Merge one phase's outcome: failed beats broken beats skipped beats passed."""
        rank = [Outcome.PASSED, Outcome.SKIPPED, Outcome.BROKEN, Outcome.FAILED]
        previous = self.outcomes.get(nodeid)
        if previous is None or rank.index(outcome) > rank.index(previous):
            self.outcomes[nodeid] = outcome
        if gating:
            self.gating.add(nodeid)
        if category:
            self.categories[nodeid] = category
        if outcome in (Outcome.FAILED, Outcome.BROKEN):
            self.failures.append(
                Failure(nodeid, outcome, gating, phase, message[:MAX_MESSAGE], backend)
            )

    def note_quarantined(self, nodeid: str, entry: str) -> None:
        self.quarantined[nodeid] = entry

    def note_rerun(self, nodeid: str, attempts: int, first_failure: str) -> None:
        self.reruns[nodeid] = (attempts, first_failure[:MAX_MESSAGE])

    def flaky(self) -> list[str]:
        """Tests that failed, then passed when rerun: reported, never hidden."""
        return sorted(n for n in self.reruns if self.outcomes.get(n) is Outcome.PASSED)

    def counts(self, only_gating: bool = False) -> dict[str, int]:
        counter = Counter(
            str(o) for n, o in self.outcomes.items() if not only_gating or n in self.gating
        )
        return {str(o): counter.get(str(o), 0) for o in Outcome}

    def by_category(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for nodeid, outcome in self.outcomes.items():
            table.setdefault(self.categories.get(nodeid, "other"), Counter())[str(outcome)] += 1
        return {c: {str(o): n.get(str(o), 0) for o in Outcome} for c, n in sorted(table.items())}

    @property
    def gate_failed(self) -> bool:
        return any(f.gating and f.kind is Outcome.FAILED for f in self.failures)

    def backends(self, *, gating: bool = False) -> list[str]:
        """The back ends that failed (``"Prometheus: unreachable"``), each once, in order."""
        seen = [f.backend for f in self.failures if f.backend and (f.gating or not gating)]
        return list(dict.fromkeys(seen))

    def _backends_note(self, *, gating: bool) -> str:
        failed = self.backends(gating=gating)
        return f" ({'; '.join(failed)})" if failed else ""

    def verdict(self) -> tuple[Gate, str]:
        """The gate and one sentence saying why."""
        gating = self.counts(only_gating=True)
        if self.gate_failed:
            names = sorted({f.test for f in self.failures if f.gating and f.kind is Outcome.FAILED})
            return Gate.FAILED, f"{len(names)} gating check(s) failed: {', '.join(names[:5])}"
        if gating["broken"]:
            return Gate.INCONCLUSIVE, (
                f"{gating['broken']} gating check(s) broke inside the harness"
                f"{self._backends_note(gating=True)}; the target was not judged"
            )
        if not gating["passed"]:
            why = (
                "no gating check was selected"
                if not self.gating_selected and not self.gating
                else "no gating check was executed (all skipped or deselected)"
            )
            return Gate.INCONCLUSIVE, why
        flaky = [name for name in self.flaky() if name in self.gating]
        note = f" ({len(flaky)} only on rerun: flaky)" if flaky else ""
        return Gate.PASSED, f"{gating['passed']} gating check(s) passed{note}"
