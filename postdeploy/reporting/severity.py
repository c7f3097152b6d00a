"""How bad it is: the operations plan's incident severity, computed from what failed.

* **Sev 1** (critical: roll back and escalate): the app is down (it did not answer, or its
  health check failed), a core journey, authentication or data-integrity check failed, or a
  rollback or its verification failed (or the controller escalated, e.g. an objective missed).
* **Sev 2** (roll back or fix within the hour): only other gating checks failed - performance
  or non-critical functional checks.
* **Sev 3** (monitor): warnings only - non-gating failures, quarantined or flaky checks.

Which checks are Sev 1 is configuration (``[targets.X.severity]``): ``sev1_checks`` are
fnmatch patterns over test node ids, ``sev1_categories`` the suite categories whose gating
failures are Sev 1. Severities up to ``page_max_level`` page (default: only Sev 1); a Sev 3
never pages. A target with nothing to report has no severity (``level`` is None).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from postdeploy.config import Target
    from postdeploy.gate import TargetResults

SEV1, SEV2, SEV3 = 1, 2, 3
#: The one-word PagerDuty/Events API severity of each level.
EVENT_SEVERITY = {SEV1: "critical", SEV2: "error", SEV3: "warning"}
#: Text a failure carries when the target did not answer at all (postdeploy.fixtures).
UNREACHABLE_TEXT = "is unreachable at"
#: Reasons kept per assessment.
MAX_REASONS = 10
DEFAULT_PAGE_MAX_LEVEL = SEV1


def as_list(value: Any) -> list[str]:
    """A configuration list, also written as one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return [str(item).strip() for item in items if str(item).strip()]


@dataclass(frozen=True)
class SeverityRules:
    """The ``[targets.X.severity]`` section, read."""

    sev1_checks: tuple[str, ...] = ()
    sev1_categories: tuple[str, ...] = ()
    page_max_level: int = DEFAULT_PAGE_MAX_LEVEL

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> SeverityRules:
        section = section or {}
        return cls(
            tuple(as_list(section.get("sev1_checks", ()))),
            tuple(as_list(section.get("sev1_categories", ()))),
            int(section.get("page_max_level", DEFAULT_PAGE_MAX_LEVEL)),
        )

    def critical(self, test: str, category: str) -> bool:
        return category in self.sev1_categories or any(
            fnmatch.fnmatchcase(test, pattern) for pattern in self.sev1_checks
        )


@dataclass
class Assessment:
    """A target's severity and the reasons for it; lands in verdict.json as ``severity``."""

    level: int | None = None
    reasons: list[str] = field(default_factory=list)
    pages: bool = False

    @property
    def label(self) -> str:
        return f"Sev {self.level}" if self.level else "none"

    @property
    def event_severity(self) -> str:
        """``critical``, ``error``, ``warning``, or ``info`` when there is no incident."""
        return EVENT_SEVERITY.get(self.level or 0, "info")

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "label": self.label,
            "reasons": self.reasons[:MAX_REASONS],
            "pages": self.pages,
        }


def assess(
    rules: SeverityRules,
    failures: Iterable[Mapping[str, Any]],
    categories: Mapping[str, str] | None = None,
    *,
    warnings: Iterable[str] = (),
    rollback: Mapping[str, Any] | None = None,
) -> Assessment:
    """The severity of what failed.

    ``failures`` are verdict failure entries (``test``, ``kind``, ``gating``, ``message``);
    only ``failed`` ones count (a broken check says nothing about the target). ``categories``
    maps node ids to their suite category; ``warnings`` names quarantined or flaky checks.
    """
    categories = categories or {}
    sev1: list[str] = []
    sev2: list[str] = []
    sev3: list[str] = [f"warning: {name}" for name in warnings]
    for failure in failures:
        if failure.get("kind") != "failed":
            continue
        test = str(failure.get("test", ""))
        if not failure.get("gating"):
            sev3.append(f"non-gating check failed: {test}")
        elif UNREACHABLE_TEXT in str(failure.get("message", "")):
            sev1.append(f"app down: {test} found the target unreachable")
        elif rules.critical(test, categories.get(test, "")):
            sev1.append(f"critical check failed: {test}")
        else:
            sev2.append(f"check failed: {test}")
    rollback = rollback or {}
    status = rollback.get("status")
    if status == "failed":
        sev1.insert(0, f"rollback failed: {rollback.get('reason') or 'no reason recorded'}")
    elif rollback.get("escalate"):
        sev1.insert(0, f"escalated: {rollback.get('reason') or 'no reason recorded'}")
    for level, reasons in ((SEV1, sev1), (SEV2, sev2), (SEV3, sev3)):
        if reasons:
            return Assessment(level, list(dict.fromkeys(reasons)), level <= rules.page_max_level)
    return Assessment()


def assess_entry(
    rules: SeverityRules, entry: Mapping[str, Any], categories: Mapping[str, str] | None = None
) -> Assessment:
    """The severity of one target's verdict entry (``reporting.verdict.target_verdict``)."""
    warnings = [*entry.get("flaky", []), *(q["test"] for q in entry.get("quarantined", []))]
    return assess(
        rules,
        entry.get("failures", []),
        categories,
        warnings=warnings,
        rollback=entry.get("rollback"),
    )


def assess_results(
    target: Target, results: TargetResults, rollback: Mapping[str, Any] | None = None
) -> Assessment:
    """The severity of a target's results so far (the run controller, the watch)."""
    warnings = [
        *results.flaky(),
        *(name for name in results.quarantined if name not in results.flaky()),
    ]
    return assess(
        SeverityRules.from_section(target.sections.get("severity")),
        [f.to_dict() for f in results.failures],
        results.categories,
        warnings=warnings,
        rollback=rollback,
    )
