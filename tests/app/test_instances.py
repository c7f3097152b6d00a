"""Several instances behind an edge: shared rate limits, trusted forwarded headers, identity."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from learning_assistant.config import RateLimit, Settings
from learning_assistant.db import Database, open_database
from learning_assistant.errors import ApiError
from learning_assistant.forwarded import ForwardedHeadersMiddleware, TrustedProxies
from learning_assistant.ratelimit import SharedRateLimiter
from starlette.types import Receive, Scope, Send

from tests.app.conftest import BASE_URL, PASSWORD

EDGE = "127.0.0.1"
OUTSIDER = "203.0.113.9"
CLIENT_A = "198.51.100.1"
CLIENT_B = "198.51.100.2"
EDGE_PORT = 40000
CONCURRENT_HITS = 8
SHARED_LIMIT = 3


@pytest.fixture
def new_instance(app_env: Callable[..., None]) -> Callable[..., object]:
    """Factory: one app instance on the test's database, reached from the ``peer`` address."""
    from fastapi.testclient import TestClient
    from learning_assistant.app import create_app

    def make(peer: str = EDGE, **variables: str) -> TestClient:
        app_env(**variables)
        return TestClient(create_app(), base_url=BASE_URL, client=(peer, EDGE_PORT))

    return make


def register(client, email: str, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    body = {"email": email, "password": PASSWORD, "name": "Instance Tester"}
    return client.post("/api/auth/register", json=body, headers=headers).status_code


@pytest.fixture
def database(database_location: str) -> Database:
    database = open_database(database_location)
    database.initialize()
    yield database
    database.close()


# --- shared rate limits --------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_instances_on_postgresql_share_the_registration_limit(new_instance):
    first = new_instance(LA_RATE_LIMIT_REGISTER=f"{SHARED_LIMIT}/60", LA_INSTANCE_ID="1")
    second = new_instance(LA_INSTANCE_ID="2")

    statuses = [
        register(instance, f"shared{n}@example.com")
        for n, instance in enumerate([first, second] * SHARED_LIMIT)
    ]

    assert statuses == [201] * SHARED_LIMIT + [429] * SHARED_LIMIT


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_instances_on_postgresql_share_the_login_limit(new_instance):
    first = new_instance(LA_RATE_LIMIT_LOGIN="2/60", LA_INSTANCE_ID="1")
    second = new_instance(LA_INSTANCE_ID="2")
    assert register(first, "target@example.com") == 201
    wrong = {"email": "target@example.com", "password": "not-the-password"}

    assert first.post("/api/auth/login", json=wrong).status_code == 401
    assert second.post("/api/auth/login", json=wrong).status_code == 401
    blocked = first.post("/api/auth/login", json=wrong)

    assert blocked.status_code == 429
    assert second.post("/api/auth/login", json=wrong).status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_on_sqlite_each_process_keeps_its_own_limit(new_instance):
    # The local shape: one instance, limits in memory (two would each allow the limit).
    first = new_instance(LA_RATE_LIMIT_REGISTER="1/60")
    second = new_instance()

    assert [register(first, "a@example.com"), register(second, "b@example.com")] == [201, 201]
    assert register(first, "c@example.com") == 429


def test_the_shared_limiter_forgets_hits_older_than_the_window(database):
    now = [1000.0]
    limiter = SharedRateLimiter(RateLimit(2, 10.0), database, "test", clock=lambda: now[0])
    assert limiter.hit("k") is None
    now[0] += 5
    assert limiter.hit("k") is None

    assert limiter.hit("k") == pytest.approx(5.0)  # the first hit leaves the window in 5 s
    now[0] += 5.5
    assert limiter.hit("k") is None


def test_the_shared_limiter_counts_keys_and_scopes_apart(database):
    login = SharedRateLimiter(RateLimit(1, 60.0), database, "login")
    register_ = SharedRateLimiter(RateLimit(1, 60.0), database, "register")

    assert login.hit(("10.0.0.1", "a@example.com")) is None
    assert login.hit(("10.0.0.1", "b@example.com")) is None
    assert register_.hit(("10.0.0.1", "a@example.com")) is None
    assert login.hit(("10.0.0.1", "a@example.com")) is not None


def test_the_shared_limiter_answers_429_with_retry_after(database):
    limiter = SharedRateLimiter(RateLimit(1, 30.0), database, "login")
    limiter.enforce("k", "login attempts")

    with pytest.raises(ApiError) as refused:
        limiter.enforce("k", "login attempts")

    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 30


def test_concurrent_hits_on_one_key_let_exactly_the_limit_through(database_location, database):
    # Each thread is another instance (its own connections) hitting the same client at once.
    limiters = [
        SharedRateLimiter(RateLimit(SHARED_LIMIT, 60.0), open_database(database_location), "c")
        for _ in range(CONCURRENT_HITS)
    ]
    barrier = threading.Barrier(CONCURRENT_HITS)
    allowed: list[bool] = []

    def hit(limiter: SharedRateLimiter) -> None:
        barrier.wait()
        allowed.append(limiter.hit("same-client") is None)

    threads = [threading.Thread(target=hit, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for limiter in limiters:
        limiter.database.close()

    assert sorted(allowed) == [False] * (CONCURRENT_HITS - SHARED_LIMIT) + [True] * SHARED_LIMIT


# --- forwarded headers ---------------------------------------------------------------------


def test_behind_a_trusted_edge_each_forwarded_client_has_its_own_limit(new_instance):
    client = new_instance(LA_RATE_LIMIT_REGISTER="1/60", LA_TRUSTED_PROXIES=EDGE)

    assert register(client, "a1@example.com", forwarded_for=CLIENT_A) == 201
    assert register(client, "b1@example.com", forwarded_for=CLIENT_B) == 201
    assert register(client, "a2@example.com", forwarded_for=CLIENT_A) == 429


def test_a_client_cannot_escape_the_limit_by_writing_its_own_forwarded_for(new_instance):
    client = new_instance(LA_RATE_LIMIT_REGISTER="1/60", LA_TRUSTED_PROXIES=EDGE)
    assert register(client, "a1@example.com", forwarded_for=f"10.9.9.1, {CLIENT_A}") == 201

    # The edge appends the real address; what the client wrote to its left does not count.
    assert register(client, "a2@example.com", forwarded_for=f"10.9.9.2, {CLIENT_A}") == 429


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(new_instance):
    client = new_instance(peer=OUTSIDER, LA_RATE_LIMIT_REGISTER="1/60", LA_TRUSTED_PROXIES=EDGE)

    assert register(client, "a1@example.com", forwarded_for=CLIENT_A) == 201
    assert register(client, "b1@example.com", forwarded_for=CLIENT_B) == 429


def test_without_trusted_proxies_forwarded_headers_are_ignored(new_instance):
    client = new_instance(LA_RATE_LIMIT_REGISTER="1/60")

    assert register(client, "a1@example.com", forwarded_for=CLIENT_A) == 201
    assert register(client, "b1@example.com", forwarded_for=CLIENT_B) == 429


def test_fault_limiter_keys_on_proxy(new_instance):
    client = new_instance(
        LA_RATE_LIMIT_REGISTER="1/60", LA_TRUSTED_PROXIES=EDGE, LA_FAULTS="limiter_keys_on_proxy"
    )
    assert register(client, "a1@example.com", forwarded_for=CLIENT_A) == 201

    # Another client behind the same edge is refused: the bucket is the proxy's.
    assert register(client, "b1@example.com", forwarded_for=CLIENT_B) == 429


async def scope_after_forwarding(trusted: str, peer: str, headers: dict[str, str]) -> Scope:
    seen: dict[str, Scope] = {}

    async def capture(scope: Scope, receive: Receive, send: Send) -> None:
        seen["scope"] = scope

    middleware = ForwardedHeadersMiddleware(capture, TrustedProxies.parse("T", trusted))
    scope = {
        "type": "http",
        "scheme": "http",
        "client": (peer, EDGE_PORT),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await middleware(scope, None, None)  # type: ignore[arg-type]
    return seen["scope"]


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded_for", "client", "scheme"),
    [
        (EDGE, EDGE, CLIENT_A, CLIENT_A, "https"),
        (EDGE, OUTSIDER, CLIENT_A, OUTSIDER, "http"),
        ("127.0.0.0/8,10.0.0.0/8", EDGE, f"{CLIENT_A}, 10.1.2.3", CLIENT_A, "https"),
        (EDGE, EDGE, "127.0.0.1", "127.0.0.1", "https"),
        ("::1", "::1", "2001:db8::7", "2001:db8::7", "https"),
    ],
    ids=["trusted", "untrusted", "chain-of-proxies", "all-trusted", "ipv6"],
)
def test_forwarded_client_and_scheme(trusted, peer, forwarded_for, client, scheme):
    import asyncio

    headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"}
    scope = asyncio.run(scope_after_forwarding(trusted, peer, headers))

    assert scope["client"][0] == client
    assert scope["scheme"] == scheme


def test_trusted_proxies_refuse_a_malformed_address():
    with pytest.raises(ValueError, match=r"LA_TRUSTED_PROXIES must be .*'edge'"):
        Settings.from_env({"LA_TRUSTED_PROXIES": "127.0.0.1, edge"})


# --- instance identity ---------------------------------------------------------------------


def test_health_and_every_response_name_the_instance(new_instance):
    client = new_instance(LA_INSTANCE_ID="2")

    health = client.get("/api/health")
    missing = client.get("/api/nothing-here")

    assert health.json()["instance"] == "2"
    assert health.headers["x-instance-id"] == "2"
    assert missing.status_code == 404
    assert missing.headers["x-instance-id"] == "2"


def test_log_lines_name_the_instance(new_instance, capsys):
    client = new_instance(LA_INSTANCE_ID="1")
    client.get("/api/health")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    assert lines
    assert all(line["instance"] == "1" for line in lines)


def test_without_an_instance_id_nothing_is_reported(new_instance):
    response = new_instance().get("/api/health")

    assert "instance" not in response.json()
    assert "x-instance-id" not in response.headers


def test_a_malformed_instance_id_is_refused():
    with pytest.raises(ValueError, match=r"LA_INSTANCE_ID must be .*'a b'"):
        Settings.from_env({"LA_INSTANCE_ID": "a b"})


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_faults_apply_to_one_instance_only(new_instance):
    broken = new_instance(LA_INSTANCE_ID="1", LA_FAULTS="login_broken")
    healthy = new_instance(LA_INSTANCE_ID="2", LA_FAULTS="")
    assert register(healthy, "both@example.com") == 201
    credentials = {"email": "both@example.com", "password": PASSWORD}

    assert broken.post("/api/auth/login", json=credentials).status_code == 401
    assert healthy.post("/api/auth/login", json=credentials).status_code == 200
