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


def test_a_journey_the_target_rate_limits_is_broken_never_failed(local_env, monkeypatch):
    """The browser's registration form meets the 429 (one registration a minute): the journey
    that could not register is broken, naming the rate limit - not a failed journey."""
    monkeypatch.setenv("LA_RATE_LIMIT_REGISTER", "1/60")
    local_env.platform.stop()
    local_env.platform.deploy("1.0.0")

    run = local_env.run(
        "-k", "visitor_registers or whole_journey", suites=("suites/journeys/test_journeys.py",)
    )  # fmt: skip

    assert not run.failed(), run.target()["failures"]
    assert run.broken(), run.output[-3000:]
    limited = [f for f in run.target()["failures"] if f["kind"] == "broken"]
    assert all("the target rate-limited the harness" in f["message"] for f in limited), limited
    assert all("POST /api/auth/register answered HTTP 429" in f["message"] for f in limited)
