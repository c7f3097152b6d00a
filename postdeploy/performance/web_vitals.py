"""Core Web Vitals measured in Chromium: LCP, CLS, INP, FCP and TTFB, median of N loads.

``vitals.js`` (next to this file) is injected before the page's own scripts and records the
raw ``PerformanceObserver`` entries; this module drives one page load, waits until the page
has settled, makes one real interaction (a click, for INP), reads the entries back and
computes each metric the way the web-vitals library defines it:

* LCP: the last ``largest-contentful-paint`` entry before the interaction;
* CLS: the largest session window of ``layout-shift`` entries without recent input (shifts
  less than 1 s apart, a window at most 5 s long);
* INP: the longest interaction (``event`` entries grouped by ``interactionId``; the
  ``first-input`` entry when the interaction was too quick to be reported as an event);
* FCP: the ``first-contentful-paint`` paint entry;
* TTFB: ``responseStart`` of the navigation entry.

Each page is loaded in a fresh browser context (cold cache, like a first visit), and the
median of the runs is compared with the target's ``[vitals]`` thresholds.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from postdeploy.config import Section

COLLECTOR = Path(__file__).with_name("web_vitals.js")
STORE = "window.__postdeployVitals"
#: The page has settled once no LCP or layout-shift entry came for this long.
QUIET_MS = 1000.0
#: Never wait longer than this for a page to settle after its load event.
MAX_SETTLE_MS = 10_000.0
#: How often the page is asked whether it settled or reported the interaction: a finer poll
#: ends each wait closer to the moment it is over (the windows themselves do not change).
POLL_MS = 25
#: How long an interaction may take to show up as an event-timing entry.
INTERACTION_WAIT_MS = 3000.0
#: After the interaction is reported: a long one may still be finishing its event entries.
EVENT_TAIL_MS = 100
NETWORK_IDLE_TIMEOUT_MS = 10_000
#: CLS session windows (web-vitals): shifts less than 1 s apart, windows at most 5 s long.
CLS_GAP_MS = 1000.0
CLS_WINDOW_MS = 5000.0
#: A navigation answered with this status or above served no page.
HTTP_ERROR = 400

METRICS = ("lcp_ms", "cls", "inp_ms", "fcp_ms", "ttfb_ms")
LABELS = {"lcp_ms": "LCP", "cls": "CLS", "inp_ms": "INP", "fcp_ms": "FCP", "ttfb_ms": "TTFB"}


def collector_script() -> str:
    return COLLECTOR.read_text(encoding="utf-8")


@dataclass(frozen=True)
class Vitals:
    """One page load's metrics (milliseconds, CLS unitless); None when not measurable."""

    lcp_ms: float | None
    cls: float
    inp_ms: float | None
    fcp_ms: float | None
    ttfb_ms: float | None
    lcp_element: str = ""

    def value(self, metric: str) -> float | None:
        return getattr(self, metric)


def largest_contentful_paint(entries: list[dict[str, Any]]) -> tuple[float | None, str]:
    if not entries:
        return None, ""
    last = entries[-1]
    return float(last["time"]), str(last.get("element", ""))


def cumulative_layout_shift(shifts: list[dict[str, Any]]) -> float:
    """The largest session window of unexpected shifts."""
    worst = current = 0.0
    window_start = previous = None
    for shift in sorted(shifts, key=lambda s: s["time"]):
        if shift.get("hadRecentInput"):
            continue
        start_new = (
            previous is None
            or shift["time"] - previous >= CLS_GAP_MS
            or shift["time"] - (window_start or 0.0) >= CLS_WINDOW_MS
        )
        if start_new:
            window_start, current = shift["time"], 0.0
        current += float(shift["value"])
        previous = shift["time"]
        worst = max(worst, current)
    return worst


def interaction_to_next_paint(
    events: list[dict[str, Any]], first_input: list[dict[str, Any]]
) -> float | None:
    """The longest interaction; with fewer than 50 interactions that is INP."""
    longest: dict[int, float] = {}
    for event in events:
        interaction = int(event.get("interactionId") or 0)
        if interaction:
            longest[interaction] = max(longest.get(interaction, 0.0), float(event["duration"]))
    if longest:
        return max(longest.values())
    if first_input:
        return float(first_input[0]["duration"])
    return None


def compute(store: dict[str, Any], ttfb_ms: float | None) -> Vitals:
    lcp, element = largest_contentful_paint(store.get("lcp", []))
    fcp = next(
        (
            float(p["time"])
            for p in store.get("paints", [])
            if p["name"] == "first-contentful-paint"
        ),
        None,
    )
    return Vitals(
        lcp_ms=lcp,
        cls=cumulative_layout_shift(store.get("shifts", [])),
        inp_ms=interaction_to_next_paint(store.get("events", []), store.get("firstInput", [])),
        fcp_ms=fcp,
        ttfb_ms=ttfb_ms,
        lcp_element=element,
    )


def _settle(page: Page, quiet_ms: float = QUIET_MS) -> None:
    """Wait for the network to go quiet, then until no LCP/layout shift came for ``quiet_ms``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # A page that polls or sends beacons never goes idle: then the quiet window decides.
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_load_state("networkidle", timeout=NETWORK_IDLE_TIMEOUT_MS)
    deadline = time.monotonic() + MAX_SETTLE_MS / 1000
    while time.monotonic() < deadline:
        quiet_for = page.evaluate(f"performance.now() - {STORE}.lastEntryAt")
        if quiet_for >= quiet_ms:
            return
        page.wait_for_timeout(POLL_MS)


def _interact(page: Page, selector: str) -> None:
    """One real click, then wait until it is reported (its next paint has happened)."""
    page.click(selector)
    deadline = time.monotonic() + INTERACTION_WAIT_MS / 1000
    while time.monotonic() < deadline:
        reported = page.evaluate(
            f"{STORE}.events.some(e => e.interactionId) || {STORE}.firstInput.length > 0"
        )
        if reported:
            page.wait_for_timeout(EVENT_TAIL_MS)
            return
        page.wait_for_timeout(POLL_MS)


def measure(page: Page, url: str, interaction: str) -> Vitals:
    """Load ``url`` in ``page`` (collector already injected), interact, and compute."""
    page.goto(url, wait_until="load")
    _settle(page)
    _interact(page, interaction)
    return _read(page)


def measure_load(
    page: Page, url: str, interaction: str, quiet_ms: float = QUIET_MS
) -> tuple[int | None, Vitals | None]:
    """One load for a comparison (the canary judge): the navigation's HTTP status, and the
    vitals when the page was served (no vitals of an error page). ``quiet_ms`` may be shorter
    than the absolute check's settle time: both arms are measured alike."""
    response = page.goto(url, wait_until="load")
    status = response.status if response is not None else None
    if status is None or status >= HTTP_ERROR:
        return status, None
    _settle(page, quiet_ms)
    _interact(page, interaction)
    return status, _read(page)


def _read(page: Page) -> Vitals:
    store = page.evaluate(STORE)
    ttfb = page.evaluate(
        "(() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n ? n.responseStart : null; })()"
    )
    if store.get("unsupported"):
        raise RuntimeError(
            "this browser cannot observe web vitals: " + "; ".join(store["unsupported"])
        )
    return compute(store, float(ttfb) if ttfb is not None else None)


def median(runs: list[Vitals]) -> dict[str, float | None]:
    """The median of each metric over the runs (None when a run could not measure it)."""
    result: dict[str, float | None] = {}
    for metric in METRICS:
        values = [run.value(metric) for run in runs]
        measured = [v for v in values if v is not None]
        result[metric] = statistics.median(measured) if len(measured) == len(values) else None
    return result


def thresholds(section: Section) -> dict[str, float]:
    return {metric: float(section[metric]) for metric in METRICS}


def judge(medians: dict[str, float | None], limits: dict[str, float]) -> list[str]:
    """What is not green: each metric over its threshold, or not measurable at all."""
    problems = []
    for metric in METRICS:
        value, limit = medians[metric], limits[metric]
        if value is None:
            problems.append(f"{LABELS[metric]} could not be measured")
        elif value > limit:
            problems.append(
                f"{LABELS[metric]} {format_value(metric, value)} is over "
                f"{format_value(metric, limit)}"
            )
    return problems


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if metric == "cls" else f"{value:.0f} ms"


def table(page_name: str, runs: list[Vitals], medians: dict[str, float | None]) -> str:
    """The runs and their median, one row each, for the report."""
    header = f"{page_name:<10}" + "".join(f"{LABELS[m]:>10}" for m in METRICS) + "  LCP element"
    rows = [header, "-" * len(header)]
    for index, run in enumerate(runs, 1):
        rows.append(
            f"{'run ' + str(index):<10}"
            + "".join(f"{format_value(m, run.value(m)):>10}" for m in METRICS)
            + f"  {run.lcp_element}"
        )
    rows.append(f"{'median':<10}" + "".join(f"{format_value(m, medians[m]):>10}" for m in METRICS))
    return "\n".join(rows)
