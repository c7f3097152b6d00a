"""Performance - Core Web Vitals are green on every key page (median of N loads).

LCP <= 2.5 s, CLS <= 0.1, INP <= 200 ms, FCP <= 1.8 s, TTFB <= 0.8 s by default
(``[vitals]`` in targets.toml). Each load is a first visit in a fresh browser context; INP
comes from a real click (``VITALS_INTERACTIONS``). No trace is recorded while measuring (it
would slow the page down); the figures of every run are attached, and a screenshot when
the page is not green.
"""

from __future__ import annotations

import pytest

from postdeploy.contract import KEY_PAGES, PAGES_NEEDING_LOGIN, SESSION_COOKIE, VITALS_INTERACTIONS
from postdeploy.performance import web_vitals as vitals
from postdeploy.reporting.attachments import attach_image, attach_text


def _session_cookie(target, token: str) -> list[dict]:
    return [{"name": SESSION_COOKIE, "value": token, "url": target.url}]


@pytest.mark.slow
@pytest.mark.alone
@pytest.mark.parametrize("page_name", list(KEY_PAGES))
def test_core_web_vitals_are_green(page_name, target, browser, browser_context_args, new_user):
    path = KEY_PAGES[page_name]
    cookies = _session_cookie(target, new_user().token) if page_name in PAGES_NEEDING_LOGIN else []
    runs, screenshot = [], b""
    loads = int(target.vitals.runs)
    for run in range(loads):
        context = browser.new_context(**browser_context_args)
        try:
            context.add_init_script(script=vitals.collector_script())
            if cookies:
                context.add_cookies(cookies)
            page = context.new_page()
            runs.append(vitals.measure(page, path, VITALS_INTERACTIONS[page_name]))
            if run == loads - 1:
                screenshot = page.screenshot()
        finally:
            context.close()
    medians = vitals.median(runs)
    attach_text(f"web vitals of {path}", vitals.table(page_name, runs, medians))
    problems = vitals.judge(medians, vitals.thresholds(target.vitals))
    if problems and screenshot:
        attach_image(f"{path} after the last load", screenshot)
    assert not problems, (
        f"the {page_name} page ({path}) is not green: {'; '.join(problems)} "
        f"(median of {loads} loads)\n{vitals.table(page_name, runs, medians)}"
    )
