"""The traffic budget: registrations paced within the target's declared limit (shared through
a file, invalid ones given back), and a 429 met by a check waited out once, then broken."""

from __future__ import annotations

import time

import httpx
import pytest

from postdeploy.budget import RESERVED_FOR_UNPACED, WindowBudget
from postdeploy.gate import BackendError
from postdeploy.http import BudgetTransport, TargetRateLimited, retry_after_s

REGISTER = "https://target.example/api/auth/register"


def answering(*statuses: int, retry_after: str = "0"):
    """A transport answering ``statuses`` in turn (the last one forever)."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses[min(len(sent), len(statuses) - 1)]
        sent.append(request.url.path)
        return httpx.Response(status, headers={"Retry-After": retry_after})

    return httpx.MockTransport(handler), sent


def test_a_429_is_waited_out_once_then_the_request_is_sent_again():
    inner, sent = answering(429, 200, retry_after="0")
    with httpx.Client(transport=BudgetTransport(inner, max_wait_s=1)) as client:
        assert client.get("https://target.example/api/health").status_code == 200
    assert len(sent) == 2


def test_a_second_429_breaks_the_check_saying_the_target_rate_limited_the_harness():
    inner, sent = answering(429, retry_after="0")
    client = httpx.Client(transport=BudgetTransport(inner, max_wait_s=1))
    with client, pytest.raises(TargetRateLimited) as caught:
        client.post(REGISTER)
    assert isinstance(caught.value, BackendError)
    assert not isinstance(caught.value, AssertionError)
    assert "the target rate-limited the harness" in str(caught.value)
    assert len(sent) == 2


def test_a_retry_after_beyond_the_bound_is_not_waited():
    inner, sent = answering(429, retry_after="60")
    started = time.monotonic()
    client = httpx.Client(transport=BudgetTransport(inner, max_wait_s=1))
    with client, pytest.raises(TargetRateLimited, match="Retry-After 60"):
        client.get("https://target.example/api/learning/content")
    assert time.monotonic() - started < 1
    assert len(sent) == 1


def test_retry_after_is_read_as_seconds_or_a_date():
    assert retry_after_s("7") == 7
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None
    assert 0 <= retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_registrations_wait_for_a_free_slot_of_the_window(tmp_path):
    budget = WindowBudget.registrations(tmp_path, "t", RESERVED_FOR_UNPACED + 2, 1.0)
    assert budget.limit == 2
    started = time.monotonic()
    for _ in range(3):
        budget.acquire()
    assert time.monotonic() - started >= 0.9  # the third waited for the first to leave


def test_an_invalid_registration_gives_its_slot_back(tmp_path):
    budget = WindowBudget(tmp_path / "b.json", 2, 60.0)
    inner, _ = answering(422, 422, 422, 201)
    with httpx.Client(transport=BudgetTransport(inner, 1, budget)) as client:
        for _ in range(3):
            client.post(REGISTER)  # three 422s: none counted
        started = time.monotonic()
        client.post(REGISTER)
    assert time.monotonic() - started < 0.5


def test_the_corpus_keeps_only_its_share_of_well_formed_registrations():
    from itertools import count

    from postdeploy.security.input_validation import (
        fit_registrations,
        hostile_requests,
        load_corpus,
    )

    numbers = count()
    existing = "pd-main@example.com"
    every = hostile_requests(load_corpus(), lambda: f"pd-{next(numbers)}@example.com", existing)

    kept, left_out = fit_registrations(every, 5, existing)

    spending = [r for r in kept if r.account and r.account[0] == existing and not r.structural]
    assert len(spending) == 5
    assert left_out == len(every) - len(kept) > 0
    # the probes refused before any limiter (wrong types, garbage bodies) all stay
    assert [r for r in every if r.structural] == [r for r in kept if r.structural]
    assert len({r.location for r in spending}) > 1  # spread over the fields, not the first five
