"""verdict.json and its schema, the terminal summary, and the report attachments helpers."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import jsonschema
import pytest

from postdeploy.reporting.verdict import VERDICT_SCHEMA, summary_lines, write_verdict
from tests.test_quarantine import health_standin, make_project, run_project

REPO = Path(__file__).resolve().parents[1]

TARGETS = """
[targets.alpha]
platform = "command"
url = "{url}"
rollback_command = "{command}"

[targets.beta]
platform = "command"
url = "http://127.0.0.1:9"
rollback_command = "{command}"
"""

CHECKS = """
import pathlib

import pytest

COUNTER = pathlib.Path(__file__).with_name("flaky.count")


@pytest.mark.gating
def test_health(target):
    assert target.name == "alpha", "only alpha answers"


def test_sometimes(target):
    attempt = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(attempt))
    assert attempt > 1


@pytest.mark.gating
def test_known_noisy(target):
    assert False, "noisy"


def test_harness_bug(target):
    raise KeyError("a bug in the harness")
"""


def schema() -> dict:
    return json.loads((REPO / VERDICT_SCHEMA).read_text())


def validate(verdict: dict) -> None:
    jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(verdict)


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


@pytest.fixture(scope="module")
def real_verdict(tmp_path_factory) -> dict:
    """A real run over two targets with every kind of outcome: passed, failed, broken,
    unreachable, flaky, quarantined, and a dry-run rollback."""
    root = tmp_path_factory.mktemp("verdict")
    command = shlex.join([sys.executable, "-c", "pass"])
    with health_standin() as url:
        make_project(
            root, TARGETS.format(url=url, command=command), {"functional/test_checks.py": CHECKS}
        )
        (root / "quarantine.txt").write_text("test_known_noisy  # flaky upstream\ntest_gone\n")
        done = run_project(
            root, "--target", "all", "--rerun", "1", "--quarantine", "quarantine.txt",
            "--rollback", "dry-run", "--notify", "off",
        )  # fmt: skip
    verdict = json.loads((root / "reports" / "verdict.json").read_text())
    verdict["_output"] = done.stdout
    return verdict


def test_a_real_verdict_validates_against_the_schema(real_verdict) -> None:
    verdict = {k: v for k, v in real_verdict.items() if k != "_output"}
    validate(verdict)
    alpha, beta = verdict["targets"]["alpha"], verdict["targets"]["beta"]
    # the run really covered what the schema describes
    assert alpha["gate"] == "passed"
    assert beta["gate"] == "failed"
    assert alpha["flaky"] == ["suites/functional/test_checks.py::test_sometimes[alpha]"]
    assert alpha["counts"]["broken"] == 1
    assert alpha["quarantined"][0]["entry"] == "test_known_noisy (flaky upstream)"
    assert beta["rollback"]["status"] == "dry-run"
    assert verdict["quarantine"]["unused"] == ["test_gone"]
    assert verdict["source"] == "pytest"


def test_the_schema_rejects_an_undocumented_or_missing_field(real_verdict) -> None:
    verdict = {k: v for k, v in real_verdict.items() if k != "_output"}
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        validate({**verdict, "surprise": 1})
    target = dict(verdict["targets"]["alpha"])
    del target["gate"]
    with pytest.raises(jsonschema.ValidationError, match="'gate' is a required property"):
        validate({**verdict, "targets": {"alpha": target}})


def test_the_terminal_summary_of_a_real_run(real_verdict) -> None:
    output = real_verdict["_output"]
    section = output[output.index("postdeploy verdict") :]
    lines = section.splitlines()
    assert any(line.split()[:2] == ["alpha", "functional"] for line in lines)
    assert "alpha      gate: PASSED" in section
    assert "alpha      rollback: not needed" in section
    assert "beta       gate: FAILED" in section
    assert "beta       rollback (dry-run): dry-run" in section
    assert "would call: run `" in section
    assert "alpha      flaky: suites/functional/test_checks.py::test_sometimes[alpha] passed " \
           "on attempt 2" in section  # fmt: skip
    assert "quarantined (reported, never gates)" in section
    assert "quarantine: test_gone matched no collected check" in section


VERDICT = {
    "rollback_mode": "auto",
    "targets": {
        "fly": {
            "gate": "failed",
            "reason": "1 gating check(s) failed: t",
            "counts": {"passed": 3, "failed": 1, "broken": 1, "skipped": 0},
            "categories": {
                "functional": {"passed": 2, "failed": 1, "broken": 0, "skipped": 0},
                "security": {"passed": 1, "failed": 0, "broken": 1, "skipped": 0},
            },
            "rollback": {
                "mode": "auto",
                "status": "succeeded",
                "reason": "rolled back from 7 to 6",
                "calls": ["fly deploy --image img:6"],
                "verification": {"status": "passed"},
            },
            "flaky": [],
            "reruns": [],
            "quarantined": [],
        },
        "render": {
            "gate": "passed",
            "reason": "2 gating check(s) passed",
            "counts": {"passed": 2, "failed": 0, "broken": 0, "skipped": 0},
            "categories": {"monitoring": {"passed": 2, "failed": 0, "broken": 0, "skipped": 0}},
            "rollback": None,
            "flaky": [],
            "reruns": [],
            "quarantined": [],
        },
    },
}


def test_the_summary_has_a_row_per_target_and_category_the_gate_and_the_rollback() -> None:
    lines = summary_lines(VERDICT)
    assert lines[0].split() == ["target", "category", "passed", "failed", "broken", "skipped"]
    rows = [line.split() for line in lines[2:]]
    assert ["fly", "functional", "2", "1", "0", "0"] in rows
    assert ["fly", "security", "1", "0", "1", "0"] in rows
    assert ["fly", "total", "3", "1", "1", "0"] in rows
    assert ["render", "monitoring", "2", "0", "0", "0"] in rows
    assert not any(r[:2] == ["render", "total"] for r in rows), "one category needs no total"
    text = "\n".join(lines)
    assert "fly        gate: FAILED - 1 gating check(s) failed: t" in text
    assert "fly        rollback (auto): succeeded - rolled back from 7 to 6" in text
    assert "called: fly deploy --image img:6" in text
    assert "verification: passed" in text
    assert "render     rollback: not needed" in text


def test_a_failed_gate_without_rollback_says_so() -> None:
    verdict = json.loads(json.dumps(VERDICT))
    verdict["rollback_mode"] = "off"
    verdict["targets"]["fly"]["rollback"] = None
    assert any("fly        rollback: off - nothing was rolled back" in line
               for line in summary_lines(verdict))  # fmt: skip


def test_write_verdict_redacts_secret_looking_values(tmp_path: Path) -> None:
    path = tmp_path / "verdict.json"
    write_verdict(path, {"targets": {"x": {"message": "Authorization: Bearer abcdefghijkl123"}}})
    text = path.read_text()
    assert "abcdefghijkl123" not in text
    assert "[REDACTED]" in text
