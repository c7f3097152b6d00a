"""A rate-limited harness never rolls back: against the real local app with a registration
limit far below the one the target declares, the checks that meet the 429 are broken ("the
target rate-limited the harness"), the gate inconclusive, and nothing is rolled back."""

from __future__ import annotations

CORE = ("suites/functional", "suites/monitoring/test_health.py")
#: The app's registration limit for this test (LA_RATE_LIMIT_REGISTER: count/window seconds).
TIGHT_LIMIT = "2/60"


def test_a_rate_limited_harness_is_inconclusive_and_never_rolls_back(local_env, monkeypatch):
    monkeypatch.setenv("LA_RATE_LIMIT_REGISTER", TIGHT_LIMIT)  # the deployments inherit it
    local_env.platform.stop()
    local_env.platform.deploy("1.0.0")
    local_env.platform.deploy("2.0.0")

    run = local_env.run("-m", "gating", "--rollback", "auto", suites=CORE)

    target = run.target()
    assert target["gate"] == "inconclusive", (target["gate"], target["failures"])
    assert (target.get("rollback") or {}).get("status") in (None, "not-needed"), target
    limited = [f for f in target["failures"] if f.get("backend", "").startswith("the target's")]
    assert limited, target["failures"]
    assert all(f["kind"] == "broken" for f in limited)
    assert "the target rate-limited the harness" in limited[0]["message"]
    assert not [f for f in target["failures"] if f["kind"] == "failed"], target["failures"]
    assert local_env.platform.current().version == "2.0.0"
