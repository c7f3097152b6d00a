"""No data never passes: a schemathesis run that sent no case says so instead of passing."""

from __future__ import annotations

from postdeploy.security.fuzz import FuzzReport, no_cases


def test_a_fuzz_run_without_cases_is_no_data():
    report = FuzzReport(operations=3, skipped={"GET /x": "Unsatisfiable"})

    message = no_cases(report)

    assert message.startswith("no data: schemathesis sent no test case over 3 operation(s)")
    assert "GET /x: Unsatisfiable" in message
    assert no_cases(FuzzReport(operations=3, cases=1)) == ""
