"""The latency_regression fault: every API answer and page held back by ~30 % of its time.

No timing is asserted here (speed figures come from benchmarks/bench_latency_regression.py):
the tests record the delays the fault asks for instead of sleeping them.
"""

from __future__ import annotations

import asyncio

import pytest
from learning_assistant import latency
from learning_assistant.latency import REGRESSION_FLOOR_S, REGRESSION_RATIO

APP_TIME_S = 0.010


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the fault asks for, recorded instead of slept."""
    asked: list[float] = []

    async def record(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(latency, "sleep", record)
    return asked


@pytest.mark.parametrize(
    "path", ["/api/health", "/api/learning/content", "/api/learning/content/1", "/", "/login"]
)
def test_fault_latency_regression_delays_the_api_and_the_pages(new_client, delays, path):
    client = new_client(LA_FAULTS="latency_regression")

    response = client.get(path)

    assert response.status_code == 200
    assert len(delays) == 1
    assert delays[0] >= REGRESSION_FLOOR_S


@pytest.mark.parametrize("path", ["/metrics", "/static/app.css"])
def test_fault_latency_regression_leaves_scrapes_and_assets_alone(new_client, delays, path):
    client = new_client(LA_FAULTS="latency_regression")

    assert client.get(path).status_code == 200
    assert delays == []


def test_the_healthy_release_is_not_delayed(new_client, delays):
    client = new_client()

    client.get("/api/health")
    client.get("/")

    assert delays == []


def test_the_delay_is_proportional_to_the_time_the_app_took(monkeypatch, delays):
    clock = iter([100.0, 100.0 + APP_TIME_S])
    monkeypatch.setattr(latency, "perf_counter", lambda: next(clock))
    sent: list[str] = []

    async def endpoint(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message) -> None:
        sent.append(message["type"])

    middleware = latency.LatencyRegressionMiddleware(endpoint)
    asyncio.run(middleware({"type": "http", "path": "/api/health"}, None, send))

    assert delays == [pytest.approx(REGRESSION_RATIO * APP_TIME_S + REGRESSION_FLOOR_S)]
    assert sent == ["http.response.start", "http.response.body"]
