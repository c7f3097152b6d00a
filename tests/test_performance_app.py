"""The reference app's performance and journey faults, in-process: each one does what its
catalogue entry says, and only when deployed (the suites' self-tests prove they are caught)."""

from __future__ import annotations

import asyncio
import re
import struct
import warnings
from pathlib import Path

import pytest
from learning_assistant import learning
from learning_assistant.app import create_app
from learning_assistant.bitmap import HEIGHT, WIDTH, bitmap, inline_bitmap
from learning_assistant.config import Settings
from learning_assistant.faults import FAULTS, Faults
from learning_assistant.overload import BURST_EVERY, BURST_IN_FLIGHT, ErrorBurstMiddleware

with warnings.catch_warnings():  # Starlette's notice about the test client's httpx, not the app
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

APP_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "learning_assistant"
MINE = (
    "slow_endpoint",
    "error_burst",
    "layout_shift",
    "slow_lcp",
    "slow_interaction",
    "uncompressed_assets",
    "static_uncached",
    "page_bloat",
    "journey_broken",
)
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture
def new_client(tmp_path):
    clients = []

    def make(faults: str = "") -> TestClient:
        settings = Settings(
            version="1.0.0",
            faults=Faults.parse(faults),
            database=str(tmp_path / f"la-{len(clients)}.db"),
            secret_key=b"test-secret-key",
        )
        client = TestClient(create_app(settings), base_url="https://testserver")
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _login(client: TestClient, email: str = "learner@example.com") -> str:
    body = {"email": email, "password": PASSWORD, "name": "Learner"}
    assert client.post("/api/auth/register", json=body).status_code == 201
    response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return response.json()["access_token"]


def test_every_fault_of_this_suite_is_catalogued_and_marked_where_it_lives():
    code = "\n".join(p.read_text() for p in APP_DIR.glob("*.py"))
    for name in MINE:
        assert FAULTS[name].strip()
        assert re.search(rf"# FAULT {name}\b", code), f"no '# FAULT {name}' branch"


def test_pages_carry_the_hero_image_and_no_fault_markup_when_healthy(new_client):
    client = new_client()
    _login(client)
    landing, dashboard = client.get("/").text, client.get("/dashboard").text
    assert 'src="/static/hero.svg"' in landing
    assert "data:image/bmp" not in landing
    assert "data-late-banner" not in dashboard
    assert "data-click-work-ms" not in dashboard


def test_layout_shift_and_slow_interaction_put_their_markup_on_the_dashboard(new_client):
    client = new_client("layout_shift,slow_interaction")
    dashboard = client.get("/dashboard").text
    assert 'class="announcement" data-late-banner=' in dashboard
    assert 'data-click-work-ms="400"' in dashboard


def test_page_bloat_inlines_a_real_uncompressible_bitmap(new_client):
    image = bitmap()
    magic, size, *_, width, height = struct.unpack("<2sIHHIIii", image[:26])
    assert (magic, size, width, height) == (b"BM", len(image), WIDTH, HEIGHT)
    landing = new_client("page_bloat").get("/").text
    assert inline_bitmap() in landing
    assert len(landing) > 900_000


def test_static_files_are_cached_and_compressed_unless_a_fault_says_otherwise(new_client):
    healthy = new_client().get("/static/app.js", headers={"Accept-Encoding": "gzip"})
    assert healthy.headers["content-encoding"] == "gzip"
    assert healthy.headers["cache-control"] == "public, max-age=3600"
    assert "etag" in healthy.headers
    assert "last-modified" in healthy.headers

    uncached = new_client("static_uncached").get("/static/app.js")
    assert uncached.headers["cache-control"] == "no-store"
    assert "etag" not in uncached.headers
    assert "last-modified" not in uncached.headers

    plain = new_client("uncompressed_assets").get("/", headers={"Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in plain.headers


def test_journey_broken_serves_browsers_stale_progress_and_the_api_fresh(new_client):
    client = new_client("journey_broken")
    token = _login(client)  # the client now also holds the session cookie
    assert client.get("/api/learning/progress").json()["sessions"] == 0  # cookie: cached
    session = {"content_id": 1, "duration_s": 60, "score": 90}
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/learning/session", json=session, headers=bearer).status_code == 201
    assert client.get("/api/learning/progress").json()["sessions"] == 0  # stale for the browser
    fresh = client.get("/api/learning/progress", headers=bearer).json()
    assert fresh["sessions"] == 1  # the API itself is right
    learning.STALE_PROGRESS.clear()


def test_slow_endpoint_delays_only_the_lesson_catalogue(new_client, monkeypatch):
    slept = []
    monkeypatch.setattr(learning.time, "sleep", slept.append)
    client = new_client("slow_endpoint")
    assert client.get("/api/learning/content").status_code == 200
    assert client.get("/api/learning/content/1").status_code == 200
    assert slept == [learning.SLOW_ENDPOINT_DELAY_S]
    assert learning.SLOW_ENDPOINT_DELAY_S > 2.0  # over the 2 s SLO


def _burst_outcomes(concurrency: int, requests: int) -> list[int]:
    async def slow_ok(scope, receive, send):
        await asyncio.sleep(0.001)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ErrorBurstMiddleware(slow_ok)

    async def one() -> int:
        status = []

        async def send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])

        async def receive():
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await middleware(scope, receive, send)
        return status[0]

    async def run() -> list[int]:
        outcomes: list[int] = []
        for _ in range(requests // concurrency):
            outcomes += await asyncio.gather(*(one() for _ in range(concurrency)))
        return outcomes

    return asyncio.run(run())


def test_error_burst_fails_a_few_percent_only_under_concurrent_load():
    assert 500 not in _burst_outcomes(concurrency=1, requests=200)  # one at a time: never
    concurrency, requests = 10, 500
    outcomes = _burst_outcomes(concurrency, requests)
    # of each 10 started together, those that find 4 or more in flight are "under load"
    busy = requests // concurrency * (concurrency - BURST_IN_FLIGHT + 1)
    assert outcomes.count(500) == busy // BURST_EVERY
    assert 0.01 <= outcomes.count(500) / len(outcomes) <= 0.05  # a few percent
