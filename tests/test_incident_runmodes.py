"""The monitor in the run modes: the gate workflow watches after a passing gate, a Kubernetes
Deployment watches continuously with the plan's thresholds, the nightly drills monthly."""

from __future__ import annotations

import yaml

from tests.conftest import REPO
from tests.test_report_runmodes import bash_ok

GATE = REPO / ".github" / "workflows" / "postdeploy-gate.yml"
NIGHTLY = REPO / ".github" / "workflows" / "postdeploy-nightly.yml"
WATCH = REPO / "deploy" / "kubernetes" / "watch-deployment.yaml"
PLAN_THRESHOLDS = {
    "ROLLBACK_ERROR_THRESHOLD": "5",
    "ROLLBACK_RESPONSE_TIME_THRESHOLD": "5000",
    "ROLLBACK_MONITORING_INTERVAL": "30",
}


def load(path):
    return yaml.safe_load(path.read_text())


def test_the_gate_watches_for_ten_minutes_after_a_passing_gate():
    job = load(GATE)["jobs"]["gate"]
    steps = job["steps"]
    names = [step.get("id") or step.get("name") for step in steps]
    decide, watch = names.index("decide"), names.index("watch")
    assert decide < watch, "the watch comes after the gate's decision"
    step = steps[watch]
    assert "if" not in step, "no `if`: it runs only when the gate passed (every step succeeded)"
    assert "postdeploy watch" in step["run"]
    assert '--target "$TARGET"' in step["run"]
    assert "--duration 10m" in step["run"]
    assert all(job["env"][k] == v for k, v in PLAN_THRESHOLDS.items())
    assert job["timeout-minutes"] >= 40
    # the ledger is kept after the watch, which may have rolled back
    save = next(
        i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/cache/save")
    )
    assert save > watch
    assert steps[save]["if"] == "always()"


def test_the_watch_deployment_runs_watch_continuously_with_the_plans_thresholds():
    documents = list(yaml.safe_load_all(WATCH.read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    assert deployment["apiVersion"] == "apps/v1"
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    [container] = spec["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert {k: env[k] for k in PLAN_THRESHOLDS} == PLAN_THRESHOLDS
    script = container["args"][0]
    assert "while true" in script
    assert "postdeploy watch" in script
    assert "--rollback auto" in script
    bash_ok(script)
    claim = next(d for d in documents if d["kind"] == "PersistentVolumeClaim")
    volumes = spec["template"]["spec"]["volumes"]
    assert any(v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
               for v in volumes)  # fmt: skip


def test_the_nightly_drills_every_platform_target_monthly():
    workflow = load(NIGHTLY)
    triggers = workflow.get("on", workflow.get(True))
    crons = [entry["cron"] for entry in triggers["schedule"]]
    monthly = next(c for c in crons if c.split()[2] == "1")
    assert monthly.split()[3:] == ["*", "*"]
    drill = workflow["jobs"]["drill"]
    assert monthly in drill["if"]
    assert monthly in workflow["jobs"]["nightly"]["if"]  # the nightly stands aside that day
    assert set(drill["strategy"]["matrix"]["target"]) == {
        "fly", "railway", "render", "aws", "gcp", "azure",
    }  # fmt: skip
    run = next(s["run"] for s in drill["steps"] if "postdeploy drill" in s.get("run", ""))
    assert '--target "$TARGET"' in run
    restore = next(s for s in drill["steps"] if s.get("uses", "").startswith("actions/cache"))
    assert ".postdeploy-state/rollback-ledger" in restore["with"]["path"]
