"""The storage layer on both back ends: queries, errors, versioned migrations, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from learning_assistant.config import Settings
from learning_assistant.db import (
    Database,
    DatabaseError,
    IntegrityError,
    list_lessons,
    open_database,
)
from learning_assistant.migrations import MIGRATIONS, Migration, applied_versions, migrate

ALL_VERSIONS = [migration.version for migration in MIGRATIONS]
CONCURRENT_STARTS = 4
#: pg_terminate_backend only signals; this long it waits for the backend to be gone.
TERMINATE_WAIT_MS = 5000
EXTRA = Migration(
    ALL_VERSIONS[-1] + 1,
    "a table a newer release adds",
    sqlite=("CREATE TABLE badges (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",),
    postgresql=("CREATE TABLE badges (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",),
)
BROKEN = Migration(
    ALL_VERSIONS[-1] + 1,
    "a migration that fails half-way",
    sqlite=("CREATE TABLE half_done (id INTEGER)", "CREATE TABLE oops ("),
    postgresql=("CREATE TABLE half_done (id INTEGER)", "CREATE TABLE oops ("),
)


@pytest.fixture
def new_database(database_location: str) -> Callable[[], Database]:
    """Factory: another handle on the test's database, as another instance would open it."""
    opened: list[Database] = []

    def make() -> Database:
        database = open_database(database_location)
        opened.append(database)
        return database

    yield make
    for database in opened:
        database.close()


@pytest.fixture
def database(new_database: Callable[[], Database]) -> Database:
    return new_database()


def table_exists(database: Database, name: str) -> bool:
    try:
        with database.connect() as conn:
            conn.execute(f"SELECT COUNT(*) FROM {name}")  # noqa: S608
    except DatabaseError:
        return False
    return True


def test_the_first_start_runs_every_migration_and_seeds_the_lessons(database):
    assert database.initialize() == ALL_VERSIONS

    assert applied_versions(database) == ALL_VERSIONS
    with database.connect() as conn:
        assert len(list_lessons(conn)) >= 4


def test_a_restart_runs_no_migration_again(database):
    database.initialize()

    assert database.initialize() == []
    assert applied_versions(database) == ALL_VERSIONS


def test_a_new_release_runs_only_the_missing_migrations(database):
    assert migrate(database, MIGRATIONS[:1]) == ALL_VERSIONS[:1]

    assert migrate(database, (*MIGRATIONS, EXTRA)) == [*ALL_VERSIONS[1:], EXTRA.version]
    assert table_exists(database, "badges")


def test_an_older_release_starts_on_a_schema_a_newer_one_migrated(database):
    migrate(database, (*MIGRATIONS, EXTRA))

    assert migrate(database, MIGRATIONS) == []
    assert applied_versions(database) == [*ALL_VERSIONS, EXTRA.version]


def test_a_failing_migration_leaves_the_database_as_it_was(database):
    database.initialize()

    with pytest.raises(DatabaseError):
        migrate(database, (*MIGRATIONS, BROKEN))

    assert applied_versions(database) == ALL_VERSIONS
    assert not table_exists(database, "half_done")


def test_migration_versions_must_increase(database):
    with pytest.raises(ValueError, match="unique and increasing"):
        migrate(database, (MIGRATIONS[1], MIGRATIONS[0]))


def test_instances_starting_at_once_migrate_exactly_once(new_database):
    instances = [new_database() for _ in range(CONCURRENT_STARTS)]
    barrier = threading.Barrier(CONCURRENT_STARTS)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def start(database: Database) -> None:
        barrier.wait()
        try:
            applied.append(database.initialize())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(db,)) for db in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(applied) == [[]] * (CONCURRENT_STARTS - 1) + [ALL_VERSIONS]
    assert applied_versions(instances[0]) == ALL_VERSIONS


def test_data_written_by_one_instance_is_read_by_another(new_database):
    first, second = new_database(), new_database()
    first.initialize()
    with first.connect() as conn:
        conn.execute(
            "INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, ?, ?)",
            ("shared@example.com", "Shared", "x", "2026-01-01T00:00:00Z"),
        )

    with second.connect() as conn:
        row = conn.execute("SELECT name FROM users WHERE email = ?", ("shared@example.com",))

    assert row.fetchone()["name"] == "Shared"


def test_rows_read_by_name_and_by_position(database):
    database.initialize()
    with database.connect() as conn:
        row = conn.execute("SELECT id, title FROM lessons WHERE id = ?", (1,)).fetchone()

    assert row["id"] == row[0] == 1
    assert dict(row) == {"id": 1, "title": row["title"]}


def test_a_broken_constraint_is_an_integrity_error(database):
    database.initialize()
    insert = "INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, ?, ?)"
    with database.connect() as conn:
        conn.execute(insert, ("twice@example.com", "A", "x", "2026-01-01T00:00:00Z"))

    with pytest.raises(IntegrityError), database.connect() as conn:
        conn.execute(insert, ("twice@example.com", "B", "x", "2026-01-01T00:00:00Z"))


def test_a_failed_unit_of_work_is_rolled_back(database):
    database.initialize()

    def write_then_fail() -> None:
        with database.connect() as conn:
            conn.execute("UPDATE lessons SET title = ? WHERE id = ?", ("changed", 1))
            raise RuntimeError("the endpoint failed after writing")

    with pytest.raises(RuntimeError):
        write_then_fail()

    with database.connect() as conn:
        assert conn.execute("SELECT title FROM lessons WHERE id = 1").fetchone()[0] != "changed"


def test_invalid_sql_is_a_database_error_naming_the_cause(database):
    with pytest.raises(DatabaseError, match=r"(?i)syntax"), database.connect() as conn:
        conn.execute("SELEC 1")


def test_an_unreachable_database_fails_with_a_database_error(database):
    with pytest.raises(DatabaseError):
        database.unreachable().ping()


def test_the_database_clock_is_unix_seconds(database):
    import time

    with database.connect() as conn:
        assert abs(database.clock(conn) - time.time()) < 60


def test_the_database_url_wins_over_the_sqlite_path(tmp_path):
    url = "postgresql://la@127.0.0.1:5432/learning_assistant"
    settings = Settings.from_env({"LA_DATABASE": str(tmp_path / "la.db"), "LA_DATABASE_URL": url})

    assert settings.database_location == url
    assert url not in repr(settings)


def test_a_sqlite_url_opens_that_file(tmp_path):
    database = open_database(f"sqlite://{tmp_path}/la.db")
    database.initialize()

    assert (tmp_path / "la.db").exists()


def test_an_unsupported_database_url_names_the_accepted_forms():
    with pytest.raises(ValueError, match=r"'mysql'.*postgresql://.*sqlite:///"):
        open_database("mysql://la@localhost/la")


@pytest.mark.parametrize(
    "url",
    ["postgresql://la:s3cret@localhost:notaport/la", "postgresql://la:s3cret@[::1/la"],
    ids=["port", "host"],
)
def test_a_malformed_postgresql_url_is_refused_without_its_password(url):
    with pytest.raises(ValueError, match="PostgreSQL URL is invalid") as refused:
        open_database(url)

    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_pooled_connections_recover_after_the_server_dropped_them(database, postgres_cluster):
    import psycopg

    database.initialize()
    database.ping()  # leaves a pooled connection
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity"
            " WHERE application_name = 'learning_assistant'",
            (TERMINATE_WAIT_MS,),
        )

    with pytest.raises(DatabaseError):
        database.ping()  # the dead pooled connection: this request fails...
    assert database.ping() >= 0  # ...and the next one gets a new connection


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_process_opens_at_most_its_share_of_connections(database_location, monkeypatch):
    from learning_assistant.backends import postgres

    monkeypatch.setattr(postgres, "POOL_WAIT_S", 0.1)
    database = postgres.PostgresDatabase(database_location, max_connections=1)
    try:
        with database.connect(), pytest.raises(DatabaseError, match="connections stayed busy"):
            database.ping()  # would need a second connection
        assert database.ping() >= 0  # the first one is free again
    finally:
        database.close()


def test_a_corrupt_sqlite_file_stops_the_start_clearly_and_is_left_alone(tmp_path):
    path = tmp_path / "la.db"
    path.write_bytes(b"this is not a database, but someone's data" * 100)
    before = path.read_bytes()

    with pytest.raises(DatabaseError, match=r"cannot prepare the database .*la\.db.*not a data"):
        open_database(str(path)).initialize()

    assert path.read_bytes() == before


def test_a_postgresql_server_that_is_down_stops_the_start_naming_it(postgres_cluster):
    from tests.app.postgres import port_in_use

    closed_port = postgres_cluster.port + 1
    assert not port_in_use(closed_port)
    url = f"postgresql://la:s3cret@127.0.0.1:{closed_port}/la"

    with pytest.raises(DatabaseError, match=rf"127\.0\.0\.1:{closed_port}") as refused:
        open_database(url).initialize()

    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_database_from_before_migrations_is_adopted_with_its_data(database):
    # What a release without schema_migrations left behind: the tables, data, no record.
    with database.migration_lock() as conn:
        for statement in MIGRATIONS[0].statements(database.dialect):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, ?, ?)",
            ("old@example.com", "Old", "x", "2025-01-01T00:00:00Z"),
        )

    assert database.initialize() == ALL_VERSIONS
    with database.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1
