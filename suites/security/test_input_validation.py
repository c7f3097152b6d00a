"""Security validation - malicious inputs rejected.

The corpus in ``fixtures/payloads/`` goes to every input of the contract once per run
(``input_answers``); schemathesis fuzzes the OpenAPI document (``fuzz_report``). Each check
judges the same answers from its own angle.
"""

from __future__ import annotations

import collections

import pytest

from postdeploy.reporting.attachments import attach_text
from postdeploy.security.fuzz import no_cases
from postdeploy.security.fuzz import summarize as summarize_fuzz
from postdeploy.security.input_validation import (
    acceptance_problems,
    leak_problems,
    reflection_problems,
    server_error_problems,
    summarize,
)


@pytest.mark.gating
def test_hostile_input_never_causes_a_server_error(input_answers):
    _attach_statuses(input_answers)
    problems = server_error_problems(input_answers)
    assert not problems, summarize(problems, len(input_answers), "got a 5xx or no answer")


def test_invalid_input_is_refused_with_a_client_error(input_answers):
    """Wrong types, malformed or oversized JSON, invalid UTF-8: always a 4xx."""
    problems = acceptance_problems(input_answers)
    assert not problems, summarize(problems, len(input_answers), "were accepted")


def test_no_payload_is_reflected_unescaped_in_html(input_answers):
    problems = reflection_problems(input_answers)
    assert not problems, summarize(problems, len(input_answers), "came back unescaped in HTML")


def test_no_stack_trace_or_error_detail_leaks(input_answers):
    problems = leak_problems(input_answers)
    assert not problems, summarize(problems, len(input_answers), "leaked error details")


@pytest.mark.gating
def test_fuzzed_requests_never_cause_a_server_error(fuzz_report):
    assert fuzz_report.cases, no_cases(fuzz_report)
    assert not fuzz_report.server_errors, summarize_fuzz(
        fuzz_report.server_errors, fuzz_report, "server errors"
    )


def test_fuzzed_responses_match_the_openapi_document(fuzz_report):
    assert fuzz_report.cases, no_cases(fuzz_report)
    problems = fuzz_report.nonconformant + [
        f"{operation}: not fuzzed: {why}" for operation, why in fuzz_report.skipped.items()
    ]
    assert not problems, summarize_fuzz(problems, fuzz_report, "responses off the document")


def _attach_statuses(answers) -> None:
    table = collections.defaultdict(collections.Counter)
    for answer in answers:
        table[answer.request.input][answer.status or answer.error[:40]] += 1
    lines = [f"{name}: {dict(counts)}" for name, counts in sorted(table.items())]
    attach_text(f"{len(answers)} hostile requests: statuses by input", "\n".join(lines))
