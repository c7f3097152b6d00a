"""Journeys - Complete user flows work in a real browser (Chromium, driven by Playwright).

One journey per checklist flow, plus the whole path a new learner takes: register, log in,
open a lesson, complete a learning session, see the new progress on the dashboard, log out.
Journey users are synthetic (``pd-<run id>-...@example.com``) and deleted afterwards; a
failing journey attaches a screenshot and the Playwright trace (credentials redacted).
"""

from __future__ import annotations

import contextlib
import re
import secrets
from typing import TYPE_CHECKING

import allure
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from postdeploy.browser import check_rate_limit
from postdeploy.contract import LESSON_COMPLETED_TEXT, PATHS, UI
from postdeploy.http import registration_budget
from postdeploy.users import SyntheticUser

if TYPE_CHECKING:
    from collections.abc import Iterator

LESSON_SCORE = 85


@contextlib.contextmanager
def step(page, title: str) -> Iterator[None]:
    """A named step in the report; a page that never gets there is the product's failure -
    unless the target rate-limited the browser on the way, which is the harness's (broken)."""
    with allure.step(title):
        try:
            yield
        except AssertionError as exc:  # expect(...): keep Playwright's own explanation
            check_rate_limit(page.context, title)
            raise AssertionError(f"{title}: {exc}") from None
        except PlaywrightTimeout as exc:
            check_rate_limit(page.context, title)
            raise AssertionError(f"{title}: {str(exc).splitlines()[0]}") from None
        except PlaywrightError as exc:
            if "net::" not in str(exc):
                raise
            raise AssertionError(f"{title}: {str(exc).splitlines()[0]}") from None


@pytest.fixture
def journey_user(target, new_user, browser_secrets) -> SyntheticUser:
    """Credentials for a user the journey registers through the form; deleted afterwards.
    The form's registration takes its slot of the traffic budget like the API's do."""
    budget = registration_budget(target)
    if budget is not None:
        budget.acquire()
    user = SyntheticUser(new_user.new_email(), secrets.token_urlsafe(18), "Journey Learner")
    new_user.created.append(user)  # the factory deletes it at teardown, pass or fail
    browser_secrets.append(user.password)
    return user


@pytest.fixture
def registered_user(new_user, browser_secrets) -> SyntheticUser:
    """A user registered through the API, to log in through the browser."""
    user = new_user.register("Returning Learner")
    browser_secrets.append(user.password)
    return user


def register(page, user: SyntheticUser) -> None:
    with step(page, f"register {user.email} through the form"):
        page.goto(PATHS.page_register)
        page.fill(UI.name_input, user.name)
        page.fill(UI.email_input, user.email)
        page.fill(UI.password_input, user.password)
        page.click(UI.register_submit)
        page.wait_for_url(re.compile(re.escape(PATHS.page_dashboard) + "$"))


def log_in(page, user: SyntheticUser) -> None:
    with step(page, f"log in as {user.email}"):
        page.goto(PATHS.page_login)
        page.fill(UI.email_input, user.email)
        page.fill(UI.password_input, user.password)
        page.click(UI.login_submit)
        page.wait_for_url(re.compile(re.escape(PATHS.page_dashboard) + "$"))


def expect_dashboard(page, user: SyntheticUser, completed: int, sessions: int) -> None:
    with step(page, f"the dashboard greets {user.name} and shows {completed} lesson(s) completed"):
        expect(page.locator(UI.welcome)).to_have_text(user.name)
        expect(page.locator(UI.progress_completed)).to_have_text(str(completed))
        expect(page.locator(UI.progress_sessions)).to_have_text(str(sessions))


def complete_first_lesson(page, score: int) -> str:
    with step(page, "open the first lesson from the dashboard"):
        link = page.locator(UI.lesson_links).first
        title = link.inner_text().strip()
        link.click()
        expect(page.locator(UI.lesson_title)).to_have_text(title)
        expect(page.locator(UI.lesson_body)).not_to_be_empty()
    with step(page, f"complete the lesson with score {score}"):
        page.fill(UI.score, str(score))
        page.click(UI.complete_lesson)
        expect(page.locator(UI.lesson_status)).to_have_text(LESSON_COMPLETED_TEXT)
    with step(page, "go back to the dashboard"):
        page.click(UI.back_to_dashboard)
        page.wait_for_url(re.compile(re.escape(PATHS.page_dashboard) + "$"))
    return title


def log_out(page) -> None:
    with step(page, "log out"):
        page.click(UI.logout_button)
        page.wait_for_url(re.compile(re.escape(PATHS.page_login) + "$"))
    with step(page, "the dashboard now sends the visitor back to the login page"):
        page.goto(PATHS.page_dashboard)
        page.wait_for_url(re.compile(re.escape(PATHS.page_login) + "$"))


def test_a_visitor_registers_and_lands_on_the_dashboard(page, journey_user):
    register(page, journey_user)
    expect_dashboard(page, journey_user, completed=0, sessions=0)


def test_a_user_logs_in_and_logs_out(page, registered_user):
    log_in(page, registered_user)
    expect_dashboard(page, registered_user, completed=0, sessions=0)
    log_out(page)


def test_a_completed_lesson_shows_on_the_dashboard(page, registered_user):
    log_in(page, registered_user)
    expect_dashboard(page, registered_user, completed=0, sessions=0)
    complete_first_lesson(page, LESSON_SCORE)
    expect_dashboard(page, registered_user, completed=1, sessions=1)
    with step(page, f"the average score is {LESSON_SCORE}"):
        expect(page.locator(UI.progress_score)).to_have_text(f"{LESSON_SCORE:.1f}")


@pytest.mark.gating
def test_a_new_learner_completes_the_whole_journey(page, journey_user):
    register(page, journey_user)
    expect_dashboard(page, journey_user, completed=0, sessions=0)
    log_out(page)
    log_in(page, journey_user)
    complete_first_lesson(page, LESSON_SCORE)
    expect_dashboard(page, journey_user, completed=1, sessions=1)
    log_out(page)
