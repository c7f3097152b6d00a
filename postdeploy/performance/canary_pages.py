"""Page metrics for the canary judge: N loads of each key page per arm, in Chromium.

Each load is a first visit in a fresh browser context (cold cache), as the absolute web-vitals
check makes it, measured by :mod:`postdeploy.performance.web_vitals` (LCP, CLS, TTFB, and INP
from one real click). The arms take turns as the API traffic does (ABBA), page after page,
after one untimed load per arm (Chromium's own cold start). An instance arm sends its routing
header with every request of the load (``extra_http_headers``), so the page and its assets come
from that instance; a baseline on a private CA of its own is pinned in the browser too.

What counts against an arm: a navigation answered 4xx/5xx, a network error or a load that timed
out (the page served nothing to measure). A 429 means the traffic crossed a rate limit
(:class:`TrafficThrottled`); a baseline whose loads mostly fail is :class:`BaselineUnavailable`;
a browser that will not start or crashes is :class:`~postdeploy.browser.BrowserUnavailable`:
all broken, never failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from postdeploy.browser import ACTION_TIMEOUT_MS, VIEWPORT, BrowserUnavailable, launch
from postdeploy.contract import KEY_PAGES, PAGES_NEEDING_LOGIN, SESSION_COOKIE, VITALS_INTERACTIONS
from postdeploy.gate import SETUP_FAILED
from postdeploy.performance.canary import (
    BASELINE,
    BASELINE_MAX_ERROR_SHARE,
    RATE_LIMITED,
    Arm,
    BaselineUnavailable,
    TrafficThrottled,
    arm_clients,
    prepare_arm,
)
from postdeploy.performance.judge import Kind, PageSamples
from postdeploy.performance.web_vitals import Vitals, collector_script, measure_load

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

    from postdeploy.config import Target
    from postdeploy.performance.canary import ArmClient

#: How long a page must stay without a new LCP or layout-shift entry before it is read: shorter
#: than the absolute check's second, since both arms are measured alike and time is short.
QUIET_MS = 300.0
#: Untimed loads per arm before the first page (Chromium's own cold start).
WARMUP_LOADS = 1
#: Which Vitals field feeds which page metric.
FIELDS = {Kind.LCP: "lcp_ms", Kind.CLS: "cls", Kind.TTFB: "ttfb_ms", Kind.INP: "inp_ms"}
#: Playwright errors of the page, not of the browser: the arm served nothing loadable.
PAGE_ERROR_MARKERS = ("net::", "NS_ERROR", "Navigation")


@dataclass(frozen=True)
class PagePlan:
    """Which key pages, and how many loads of each per arm."""

    pages: tuple[str, ...]
    loads: int

    @property
    def needs_login(self) -> bool:
        return any(page in PAGES_NEEDING_LOGIN for page in self.pages)


def page_plan(target: Target) -> PagePlan | None:
    """The target's ``[canary] page_loads`` of its ``pages`` (default: every key page); None
    when page metrics are off (``page_loads = 0``)."""
    section = target.canary
    loads = int(section.page_loads)
    if loads <= 0:
        return None
    named = section.pages if isinstance(section.pages, list) else str(section.pages).split(",")
    pages = tuple(str(p).strip() for p in named if str(p).strip()) or tuple(KEY_PAGES)
    unknown = [p for p in pages if p not in KEY_PAGES]
    if unknown:
        raise ValueError(
            f"{target.source}: [targets.{target.name}.canary] pages names {', '.join(unknown)}; "
            f"the key pages are {', '.join(KEY_PAGES)}"
        )
    if loads < int(section.min_page_loads):
        raise ValueError(
            f"{target.source}: [targets.{target.name}.canary] page_loads = {loads} is below "
            f"min_page_loads = {int(section.min_page_loads)}: every page metric would be "
            "inconclusive; raise page_loads (or 0 to measure no pages)"
        )
    return PagePlan(pages, loads)


@dataclass
class _PageTally:
    values: dict[str, list[float]] = field(default_factory=dict)
    loads: int = 0
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def measured(self, vitals: Vitals) -> None:
        self.loads += 1
        for kind, name in FIELDS.items():
            value = getattr(vitals, name)
            if value is not None:
                self.values.setdefault(kind, []).append(float(value))

    def note(self, what: str) -> None:
        self.loads += 1
        self.errors += 1
        self.statuses[what] = self.statuses.get(what, 0) + 1

    def samples(self) -> PageSamples:
        values = {kind: tuple(v) for kind, v in self.values.items()}
        return PageSamples(values, self.loads, self.errors)


def _arm_target(target: Target, arm: Arm) -> Target:
    return dataclasses.replace(target, url=arm.url, ca_file=arm.ca_file or target.ca_file)


class _PageArm:
    """One arm in the browser: its contexts' options, its session cookie, its load count."""

    def __init__(self, arm: Arm, client: ArmClient, login: bool) -> None:
        self.arm = arm
        self.token = client.token if login else ""
        self.count = 0

    def load(self, browser: Browser, page_name: str, tally: _PageTally | None) -> None:
        """One load of ``page_name``, noted in ``tally`` (None: a warm-up)."""
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        options: dict[str, Any] = {
            "base_url": self.arm.url,
            "viewport": dict(VIEWPORT),
            "service_workers": "block",
            "locale": "en-US",
            "extra_http_headers": {**dict(self.arm.headers), **self.arm.route(self.count)},
        }
        self.count += 1
        context = browser.new_context(**options)
        try:
            context.set_default_timeout(ACTION_TIMEOUT_MS)
            context.add_init_script(script=collector_script())
            if self.token and page_name in PAGES_NEEDING_LOGIN:
                cookie = {"name": SESSION_COOKIE, "value": self.token, "url": self.arm.url}
                context.add_cookies([cookie])  # type: ignore[list-item]
            page = context.new_page()
            try:
                status, vitals = measure_load(
                    page, KEY_PAGES[page_name], VITALS_INTERACTIONS[page_name], QUIET_MS
                )
            except PlaywrightTimeout:
                status, vitals = None, None
                what = "timeout"
            except PlaywrightError as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if not any(marker in first for marker in PAGE_ERROR_MARKERS):
                    raise BrowserUnavailable(
                        f"the browser failed loading {page_name} from {self.arm.describe()}: "
                        f"{first}",
                        SETUP_FAILED,
                    ) from None
                status, vitals, what = None, None, first[:80]
            else:
                what = f"HTTP {status}"
        finally:
            context.close()
        if status == RATE_LIMITED:
            raise TrafficThrottled(
                f"{self.arm.describe()}: the {page_name} page answered 429; the canary traffic "
                "crossed a rate limit - lower [canary] page_loads or raise the target's limit"
            )
        if tally is None:
            return
        if vitals is None:
            tally.note(what)
        else:
            tally.measured(vitals)


def collect_pages(
    playwright: Playwright, target: Target, arms: Sequence[Arm], plan: PagePlan, run_id: str
) -> dict[str, list[PageSamples]]:
    """Interleaved page loads per key page: one ``PageSamples`` per arm, in the order of
    ``arms``."""
    others = [_arm_target(target, arm) for arm in arms if arm.url != target.url]
    browser = launch(playwright, target, others)
    result: dict[str, list[PageSamples]] = {}
    try:
        with arm_clients(arms, target, run_id) as clients:
            for client in clients:
                prepare_arm(client, plan.needs_login)
            page_arms = [
                _PageArm(a, c, plan.needs_login) for a, c in zip(arms, clients, strict=True)
            ]
            for page_arm in page_arms:
                for _ in range(WARMUP_LOADS):
                    page_arm.load(browser, plan.pages[0], None)
            for page_name in plan.pages:
                tallies = [_PageTally() for _ in page_arms]
                order = list(zip(page_arms, tallies, strict=True))
                for i in range(plan.loads):
                    for page_arm, tally in order if i % 2 == 0 else reversed(order):
                        page_arm.load(browser, page_name, tally)
                _check_baseline(arms, tallies, page_name)
                result[page_name] = [tally.samples() for tally in tallies]
    finally:
        browser.close()
    return result


def _check_baseline(arms: Sequence[Arm], tallies: list[_PageTally], page_name: str) -> None:
    for arm, tally in zip(arms, tallies, strict=True):
        if (
            arm.name == BASELINE
            and tally.loads
            and (tally.errors / tally.loads > BASELINE_MAX_ERROR_SHARE)
        ):
            raise BaselineUnavailable(
                f"the {arm.describe()} failed {tally.errors} of {tally.loads} loads of the "
                f"{page_name} page ({tally.statuses}); a baseline that fails cannot be the "
                "reference - check that the stable release is healthy"
            )


def paired_pages(
    samples: dict[str, list[PageSamples]],
) -> dict[str, tuple[PageSamples, PageSamples]]:
    """(baseline, canary) per page, from a two-arm :func:`collect_pages`."""
    return {name: (arms[0], arms[1]) for name, arms in samples.items()}
