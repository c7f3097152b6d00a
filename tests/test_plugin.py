"""Plugin behaviour, with pytester: options, usage errors, parametrization, markers, the gate."""

from __future__ import annotations

import json

import pytest

from tests.terminal_output import body

TARGETS = """
[targets.alpha]
platform = "render"
url = "{url}"
service_id = "srv-alpha"

[targets.beta]
platform = "render"
url = "{url}"
service_id = "srv-beta"
"""

GATING_PASS = "import pytest\n\n@pytest.mark.gating\ndef test_gate(target):\n    assert True\n"


@pytest.fixture
def project(pytester, health_server):
    """A project with two targets served by the health stand-in."""
    pytester.makefile(".toml", targets=TARGETS.format(url=health_server))
    pytester.makeini("[pytest]\naddopts = --strict-markers -p no:cacheprovider\n")
    return pytester


def suite(pytester, category: str, source: str, name: str = "test_checks.py") -> None:
    folder = pytester.path / "suites" / category
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(source)


def verdict(pytester) -> dict:
    return json.loads((pytester.path / "reports" / "verdict.json").read_text())


def test_tests_are_parametrized_by_target_with_readable_ids(project):
    suite(project, "functional", GATING_PASS)
    result = project.runpytest_subprocess("suites", "--target", "alpha,beta", "-v")
    result.stdout.fnmatch_lines(["*test_gate[[]alpha[]] PASSED*", "*test_gate[[]beta[]] PASSED*"])
    assert result.ret == 0
    assert {t: v["gate"] for t, v in verdict(project)["targets"].items()} == {
        "alpha": "passed",
        "beta": "passed",
    }


def test_all_selects_every_target(project):
    suite(project, "functional", GATING_PASS)
    result = project.runpytest_subprocess("suites", "--target", "all")
    result.assert_outcomes(passed=2)


def test_the_folder_sets_the_category_marker(project):
    suite(project, "journeys", "def test_flow(target):\n    pass\n", name="test_flows.py")
    suite(project, "security", "def test_tls(target):\n    pass\n", name="test_tls.py")
    result = project.runpytest_subprocess("suites", "--target", "alpha", "-m", "journey", "-v")
    result.stdout.fnmatch_lines(["*test_flow[[]alpha[]] PASSED*"])
    result.assert_outcomes(passed=1, deselected=1)


def test_an_unregistered_marker_is_an_error(project):
    suite(
        project,
        "functional",
        "import pytest\n\n@pytest.mark.gatting\ndef test_x(target):\n    pass\n",
    )
    result = project.runpytest_subprocess("suites", "--target", "alpha")
    assert result.ret != 0
    # pytest's own strict-markers message, or the plugin's own enforcement when the project
    # configured none
    output = result.stdout.str()
    assert "'gatting' not found in `markers`" in output or "Unknown pytest.mark.gatting" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "gamma"], "*unknown target 'gamma'*valid targets in *: alpha, beta, all*"),
        (
            ["--target", "alpha,beta", "--base-url", "https://x.example"],
            "*--base-url applies to one target*",
        ),
        (["--target", "alpha", "--base-url", "not a url"], "*is not a valid URL*"),
        (["--target", "alpha", "--rollback", "auto"], "*--rollback auto cannot work*"),
        (["--target", "alpha", "--rollback", "sometimes"], "*invalid choice: 'sometimes'*"),
    ],
    ids=["unknown-target", "base-url-several", "bad-base-url", "rollback-no-driver", "bad-mode"],
)
def test_usage_errors_stop_before_any_test_runs(project, args, message):
    suite(project, "functional", GATING_PASS)
    result = project.runpytest_subprocess("suites", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert "passed" not in output
    from fnmatch import fnmatch

    assert any(fnmatch(line, message) for line in output.splitlines()), output


def test_a_malformed_targets_file_is_a_usage_error(pytester):
    pytester.makefile(".toml", targets="[targets.alpha\nplatform = 'fly'\n")
    suite(pytester, "functional", GATING_PASS)
    result = pytester.runpytest_subprocess("suites", "--target", "alpha")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*targets.toml: not valid TOML*"])


def test_base_url_overrides_the_configured_url(project, health_server):
    suite(
        project,
        "functional",
        "def test_url(target):\n    assert target.url == 'https://x.example'\n",
    )
    result = project.runpytest_subprocess(
        "suites", "--target", "alpha", "--base-url", "https://x.example/"
    )
    # the override is used (and is unreachable), so the probe fails fast
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*target 'alpha' is unreachable at https://x.example*"])


def test_an_unreachable_target_fails_every_test_fast_with_one_message(pytester):
    pytester.makefile(".toml", targets=TARGETS.format(url="http://127.0.0.1:9"))
    suite(pytester, "functional", GATING_PASS + "\ndef test_two(target):\n    pass\n"
          "\ndef test_three(target):\n    pass\n")  # fmt: skip
    result = pytester.runpytest_subprocess("suites", "--target", "alpha")
    assert result.ret == 1
    # the reason once, under the first test; the other two are counted, not repeated
    assert result.parseoutcomes() == {"errors": 1, "unreachable": 2}
    assert body(result.stdout.str()).count("is unreachable at http://127.0.0.1:9") == 1
    assert verdict(pytester)["targets"]["alpha"]["counts"]["failed"] == 3
    data = verdict(pytester)["targets"]["alpha"]
    assert data["gate"] == "failed"  # unreachable is a product failure, not a harness bug
    assert result.duration < 30


def test_a_failed_gating_assertion_fails_the_gate(project):
    source = "import pytest\n\n@pytest.mark.gating\ndef test_gate(target):\n"
    suite(project, "functional", source + "    assert 1 == 2, 'expected one thing, got another'\n")
    result = project.runpytest_subprocess("suites", "--target", "alpha")
    assert result.ret == 1
    data = verdict(project)["targets"]["alpha"]
    assert data["gate"] == "failed"
    assert data["failures"][0]["kind"] == "failed"
    assert "expected one thing, got another" in data["failures"][0]["message"]


def test_a_harness_exception_is_broken_and_the_gate_inconclusive(project, monkeypatch):
    monkeypatch.setenv("RENDER_API_KEY", "rnd_selftestnotasecret")
    suite(project, "functional", "import pytest\n\n@pytest.mark.gating\n"
          "def test_gate(target):\n    raise KeyError('harness bug')\n")  # fmt: skip
    result = project.runpytest_subprocess("suites", "--target", "alpha", "--rollback", "dry-run")
    assert result.ret == 1
    data = verdict(project)["targets"]["alpha"]
    assert data["gate"] == "inconclusive"
    assert data["failures"][0]["kind"] == "broken"
    assert data["rollback"] is None or data["rollback"]["status"] == "not-needed"


def test_a_failing_non_gating_check_does_not_fail_the_gate(project):
    suite(project, "functional", GATING_PASS + "\ndef test_other(target):\n    assert False\n")
    result = project.runpytest_subprocess("suites", "--target", "alpha")
    assert result.ret == 1  # pytest still reports the failure
    assert verdict(project)["targets"]["alpha"]["gate"] == "passed"


def test_no_gating_check_executed_is_inconclusive_never_passed(project):
    suite(project, "functional", "import pytest\n\n@pytest.mark.gating\n"
          "def test_gate(target):\n    pytest.skip('not today')\n")  # fmt: skip
    result = project.runpytest_subprocess("suites", "--target", "alpha")
    data = verdict(project)["targets"]["alpha"]
    assert data["gate"] == "inconclusive"
    assert "no gating check was executed" in data["reason"]
    assert result.ret == 1


def test_gating_checks_run_first(project):
    suite(project, "functional", "import pytest\n\ndef test_a(target):\n    pass\n\n"
          "@pytest.mark.gating\ndef test_b(target):\n    pass\n")  # fmt: skip
    result = project.runpytest_subprocess("suites", "--target", "alpha", "-v")
    lines = [line for line in result.stdout.lines if "PASSED" in line]
    assert "test_b" in lines[0]


def test_the_order_health_first_then_gating_checks_then_those_alone_then_those_last(project):
    """Health first (a release that is down reaches its rollback soonest), the checks that
    must run alone after the other gating checks (these run while early starts finish), and
    after them those that wait for slow quiet early work (marked last), the non-gating checks
    after every gating one."""
    checks = (
        ("test_other", ""),
        ("test_load", "@pytest.mark.gating\n@pytest.mark.alone\n"),
        ("test_scrape", "@pytest.mark.gating\n@pytest.mark.last\n"),
        ("test_login", "@pytest.mark.gating\n"),
        ("test_health", "@pytest.mark.gating\n@pytest.mark.first\n"),
    )
    source = "".join(f"{marks}def {name}(target):\n    pass\n\n" for name, marks in checks)
    suite(project, "functional", "import pytest\n\n" + source)
    result = project.runpytest_subprocess("suites", "--target", "alpha", "-v")
    ran = [line.split("::")[1].split("[")[0] for line in result.stdout.lines if "::" in line]
    assert ran == ["test_health", "test_login", "test_load", "test_scrape", "test_other"], ran


def test_targets_gate_independently(pytester, health_server):
    pytester.makefile(".toml", targets=TARGETS.format(url=health_server).replace(
        'url = "' + health_server + '"\nservice_id = "srv-beta"',
        'url = "http://127.0.0.1:9"\nservice_id = "srv-beta"'))  # fmt: skip
    suite(pytester, "functional", GATING_PASS)
    pytester.runpytest_subprocess("suites", "--target", "all")
    gates = {t: v["gate"] for t, v in verdict(pytester)["targets"].items()}
    assert gates == {"alpha": "passed", "beta": "failed"}


def test_works_with_xdist(project):
    suite(project, "functional", GATING_PASS + "\ndef test_two(target):\n    pass\n")
    result = project.runpytest_subprocess("suites", "--target", "alpha,beta", "-n", "2")
    result.assert_outcomes(passed=4)
    data = verdict(project)
    assert {t: v["gate"] for t, v in data["targets"].items()} == {
        "alpha": "passed",
        "beta": "passed",
    }
    assert data["targets"]["alpha"]["counts"]["passed"] == 2


def test_the_terminal_summary_shows_the_gate(project):
    suite(project, "functional", GATING_PASS)
    result = project.runpytest_subprocess("suites", "--target", "alpha")
    result.stdout.fnmatch_lines(["*postdeploy verdict*", "*alpha*gate: PASSED*"])


def test_non_validation_runs_are_left_alone(pytester):
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()
