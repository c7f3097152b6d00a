"""Fixtures for the self-tests of the reference Learning Assistant (in-process, no server)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.app.postgres import INSTALL_HINT, Cluster, find_bin_dir, new_cluster

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
if str(FIXTURES_DIR) not in sys.path:
    sys.path.insert(0, str(FIXTURES_DIR))

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

BASE_URL = "https://testserver"
SECRET_KEY = "test-secret-key"
PASSWORD = "correct horse battery"


def pytest_configure(config: pytest.Config) -> None:
    # fastapi.testclient still wraps httpx, which Starlette 1.x deprecates in favour of httpx2;
    # the warning is about the test client, not about the app under test.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


@dataclass
class Account:
    """A registered user with a bearer token; the client also holds the session cookie."""

    id: int
    email: str
    name: str
    password: str
    token: str

    @property
    def credentials(self) -> dict[str, str]:
        return {"email": self.email, "password": self.password}

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


BACKENDS = ("sqlite", "postgresql")
DATABASE_NUMBERS = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL server for this test session (see tests/app/postgres.py)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(f"the PostgreSQL server binaries (initdb, pg_ctl) are missing: {INSTALL_HINT}")
    cluster = new_cluster(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def new_postgres_url(postgres_cluster: Cluster) -> Iterator[Callable[[], str]]:
    """Factory: the URL of a new, empty database (dropped after the test).

    Each "database" is a schema of one database of the session's cluster, picked by the URL's
    search_path (``options``): creating a schema takes a millisecond, a database 300 ms.
    """
    import psycopg

    created: list[str] = []

    def make() -> str:
        name = f"la_test_{next(DATABASE_NUMBERS)}"
        with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {name}")
        created.append(name)
        return f"{postgres_cluster.url()}?options=-csearch_path%3D{name}"

    yield make
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        for name in created:
            admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def postgres_url(new_postgres_url: Callable[[], str]) -> str:
    return new_postgres_url()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage back end of the test's app: every app test runs on both."""
    return str(request.param)


@pytest.fixture
def database_location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of the test's back end: a SQLite path or a PostgreSQL URL."""
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "la.db")


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, database_location: str) -> Callable[..., None]:
    """Set ``LA_*`` variables for the next app, on a fresh database of the test's back end."""
    monkeypatch.setenv("LA_DATABASE_URL", database_location)
    monkeypatch.setenv("LA_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("LA_VERSION", "1.2.3")
    for name in (
        "LA_FAULTS", "LA_TOKEN_TTL_S", "LA_RATE_LIMIT_LOGIN", "LA_RATE_LIMIT_REGISTER",
        "LA_DATABASE", "LA_INSTANCE_ID", "LA_TRUSTED_PROXIES",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)

    def set_env(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_env


@pytest.fixture
def new_client(app_env: Callable[..., None]) -> Callable[..., TestClient]:
    """Factory: a TestClient over a fresh app built from the environment plus ``variables``."""
    from fastapi.testclient import TestClient
    from learning_assistant.app import create_app

    def make(**variables: str) -> TestClient:
        app_env(**variables)
        return TestClient(create_app(), base_url=BASE_URL)

    return make


@pytest.fixture
def client(new_client: Callable[..., TestClient]) -> TestClient:
    return new_client()


@pytest.fixture(scope="session")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """One app for the tests that only read (lessons, pages, headers, error shapes)."""
    from fastapi.testclient import TestClient
    from learning_assistant.app import create_app
    from learning_assistant.config import Settings

    database = tmp_path_factory.mktemp("shared") / "la.db"
    settings = Settings(version="1.2.3", database=str(database), secret_key=SECRET_KEY.encode())
    return TestClient(create_app(settings), base_url=BASE_URL)


@pytest.fixture
def new_account() -> Callable[..., Account]:
    """Factory: register and log in through ``client`` (which then holds the cookie)."""
    counter = 0

    def make(client: TestClient, name: str = "Ada Learner") -> Account:
        nonlocal counter
        counter += 1
        email = f"user{counter}@example.com"
        registered = client.post(
            "/api/auth/register", json={"email": email, "password": PASSWORD, "name": name}
        )
        assert registered.status_code == 201, registered.text
        login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return Account(
            id=registered.json()["id"],
            email=email,
            name=name,
            password=PASSWORD,
            token=login.json()["access_token"],
        )

    return make


@pytest.fixture
def account(client: TestClient, new_account: Callable[..., Account]) -> Account:
    return new_account(client)
