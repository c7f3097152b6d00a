"""The files users copy for the three ways postdeploy runs: they parse, their shell is valid,
they run what the README says, and the gate's decision step really decides.

* ``.github/workflows/postdeploy-gate.yml``: after a deployment and by hand, ``-m gating
  --rollback auto`` for the deployed target with ``--expect-version``, report as an artifact,
  the job fails unless every gate passed;
* ``.github/workflows/postdeploy-nightly.yml``: on a schedule, ``--target all``, every suite,
  report with history, notification when the run fails;
* ``deploy/kubernetes/cronjob.yaml`` and ``examples/gitlab-ci.yml``; ``tox -e ...``.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from postdeploy.quarantine import Quarantine

REPO = Path(__file__).resolve().parents[1]
GATE = REPO / ".github" / "workflows" / "postdeploy-gate.yml"
NIGHTLY = REPO / ".github" / "workflows" / "postdeploy-nightly.yml"
CRONJOB = REPO / "deploy" / "kubernetes" / "cronjob.yaml"
GITLAB = REPO / "examples" / "gitlab-ci.yml"
HEREDOC = re.compile(r"<<'PY'\n(.*?)\n\s*PY\b", re.S)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def scripts(workflow: dict) -> list[str]:
    return [step["run"] for step in steps(workflow) if "run" in step]


def bash_ok(script: str) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed to check the scripts"
    done = subprocess.run(
        [bash, "-n"], input=script, capture_output=True, text=True, timeout=10, check=False
    )
    assert done.returncode == 0, f"{done.stderr}\n{script}"


def decide(script: str, tmp_path: Path, verdict: dict | None, *args: str) -> int:
    """Run the Python a workflow step feeds to the interpreter, in a dir with this verdict."""
    (tmp_path / "reports").mkdir(exist_ok=True)
    path = tmp_path / "reports" / "verdict.json"
    path.unlink(missing_ok=True)
    if verdict is not None:
        path.write_text(json.dumps(verdict))
    (tmp_path / "summary.md").write_text("")
    env = {"GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "PYTEST_EXIT": "1"}
    code = HEREDOC.search(script).group(1)
    indent = min(len(line) - len(line.lstrip()) for line in code.splitlines() if line.strip())
    code = "\n".join(line[indent:] for line in code.splitlines())
    return subprocess.run(
        [sys.executable, "-", *args], input=code, cwd=tmp_path, env=env, text=True,
        capture_output=True, timeout=30, check=False,
    ).returncode  # fmt: skip


def verdict_with(*gates: str) -> dict:
    return {"targets": {f"t{i}": {"gate": g, "reason": "r", "rollback": None}
                        for i, g in enumerate(gates)}}  # fmt: skip


@pytest.mark.parametrize("path", [GATE, NIGHTLY], ids=["gate", "nightly"])
def test_the_workflows_parse_and_their_shell_is_valid(path: Path) -> None:
    workflow = load(path)
    for script in scripts(workflow):
        bash_ok(script)
        # event data reaches scripts through env: no ${{ }} expression inside a script
        assert "${{" not in script, script


def test_the_gate_runs_after_a_deployment_and_by_hand() -> None:
    workflow = load(GATE)
    assert set(triggers(workflow)) == {"deployment_status", "workflow_dispatch"}
    job = workflow["jobs"]["gate"]
    assert "deployment_status.state == 'success'" in job["if"]
    assert "|| 'auto'" in job["env"]["ROLLBACK"]
    gate = next(s for s in steps(workflow) if s.get("id") == "gate")["run"]
    for part in ("-m gating", '--target "$TARGET"', '--expect-version "$EXPECT_VERSION"',
                 '--rollback "$ROLLBACK"', "--quarantine quarantine.txt"):  # fmt: skip
        assert part in gate, part
    upload = next(s for s in steps(workflow) if s.get("uses", "").startswith("actions/upload-art"))
    assert upload["if"] == "always()"
    assert "reports/allure-report/" in upload["with"]["path"]
    assert any("postdeploy report" in s for s in scripts(workflow))


def test_the_gate_fails_the_job_unless_every_gate_passed(tmp_path: Path) -> None:
    script = next(s for s in steps(load(GATE)) if s.get("name", "").startswith("Decide"))["run"]
    assert decide(script, tmp_path, verdict_with("passed", "passed")) == 0
    assert "| t0 | passed |" in (tmp_path / "summary.md").read_text()
    assert decide(script, tmp_path, verdict_with("passed", "failed")) == 1
    assert decide(script, tmp_path, verdict_with("inconclusive")) == 1
    assert decide(script, tmp_path, None) == 1, "no verdict is no pass"


def test_the_nightly_validates_every_target_and_keeps_history() -> None:
    workflow = load(NIGHTLY)
    schedule = triggers(workflow)["schedule"][0]["cron"]
    assert len(schedule.split()) == 5
    validate = next(s for s in steps(workflow) if s.get("id") == "validate")["run"]
    assert "--target all" in validate
    assert " -m " not in validate, "every suite, not a marker subset"
    report = next(s for s in steps(workflow) if "postdeploy report" in s.get("run", ""))
    assert report["if"] == "always()"
    cached = [s for s in steps(workflow) if s.get("uses", "").startswith("actions/cache")]
    assert all("reports/allure-history.jsonl" in s["with"]["path"] for s in cached)
    assert {s["uses"].split("@")[0] for s in cached} == {"actions/cache/restore",
                                                         "actions/cache/save"}  # fmt: skip
    notify = next(s for s in steps(workflow) if s.get("name", "").startswith("Notify"))
    assert notify["if"].startswith("failure()")


def test_the_cronjob_runs_every_target_nightly_and_keeps_reports() -> None:
    documents = list(yaml.safe_load_all(CRONJOB.read_text()))
    cronjob = next(d for d in documents if d["kind"] == "CronJob")
    assert cronjob["apiVersion"] == "batch/v1"
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    script = container["args"][0]
    bash_ok(script)
    assert "--target all" in script
    assert "postdeploy report --reports-dir /reports" in script
    assert "exit $status" in script
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/reports"] == "reports"
    claims = {d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["reports"]["persistentVolumeClaim"]["claimName"] in claims


def test_the_gitlab_example_gates_and_runs_nightly(tmp_path: Path) -> None:
    pipeline = load(GITLAB)
    gate = pipeline["postdeploy-gate"]
    script = "\n".join(gate["script"])
    bash_ok(script)
    for part in ("-m gating", "--rollback auto", "--expect-version", "postdeploy report"):
        assert part in script, part
    assert pipeline["promote"]["needs"] == ["postdeploy-gate"]
    assert pipeline[".postdeploy"]["artifacts"]["reports"]["junit"] == "reports/junit.xml"
    verdict = tmp_path / "reports" / "verdict.json"
    assert decide(script, tmp_path, verdict_with("passed"), str(verdict)) == 0
    assert decide(script, tmp_path, verdict_with("failed"), str(verdict)) == 1
    nightly = pipeline["postdeploy-nightly"]
    assert "schedule" in nightly["rules"][0]["if"]
    nightly_script = "\n".join(nightly["script"])
    bash_ok(nightly_script)
    assert "--target all" in nightly_script


def test_tox_has_an_entry_point_per_run_mode() -> None:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / "tox.ini")
    commands = {env: tox[f"testenv:{env}"]["commands"] for env in
                ("validate", "gate", "nightly", "report")}  # fmt: skip
    assert "{posargs" in commands["validate"]
    assert "-m gating --rollback auto" in commands["gate"]
    assert "postdeploy report" in commands["gate"]
    assert "--target all" in commands["nightly"]
    assert commands["report"].strip() == "postdeploy report {posargs}"


def test_the_shipped_quarantine_file_is_valid_and_empty() -> None:
    assert Quarantine.load(REPO / "quarantine.txt").entries == []
