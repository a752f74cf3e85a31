"""Opening the store: engine set-up per backend, sessions as transactions, errors without secrets."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url

from fhir_cm.domain import Case
from fhir_cm.store import (
    BUSY_TIMEOUT_SECONDS,
    Store,
    StoreError,
    StoreUnavailable,
    get_case,
    get_case_record,
    list_audit,
    open_store,
    record_audit,
    save_case,
)
from tests.pg import require_postgres, temporary_database
from tests.store.concurrency import run_together


def test_sqlite_file_runs_in_wal_mode_with_a_busy_timeout(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store, store.session() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert s.execute(text("PRAGMA busy_timeout")).scalar() == int(BUSY_TIMEOUT_SECONDS * 1000)
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_in_memory_sqlite_keeps_its_data_across_sessions(make_case: Callable[..., Case]) -> None:
    with open_store("sqlite://") as store:
        with store.session() as s:
            save_case(s, make_case())
        with store.session(read_only=True) as s:
            assert get_case(s, "case-1") == make_case()


def test_a_session_commits_at_the_end_and_rolls_back_on_error(store: Store, make_case: Callable[..., Case]) -> None:
    with pytest.raises(RuntimeError), store.session() as s:
        save_case(s, make_case("rolled-back"))
        raise RuntimeError("boom")
    with store.session() as s:
        save_case(s, make_case("kept"))
    with store.session(read_only=True) as s:
        assert get_case(s, "rolled-back") is None
        assert get_case(s, "kept") is not None


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        open_store("mysql://user@localhost/db")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg2://someone:s3cret-pw@127.0.0.1:9/db", "unsupported database driver 'psycopg2'"),
        ("sqlite+aiosqlite:///a.db", "unsupported database driver 'aiosqlite'"),
        ("postgresql+psycopg://someone:s3cret-pw@127.0.0.1:notaport/db", "not a database URL"),
        ("sqlite:///a.db?timeout=abc", "a database URL option is not valid"),
    ],
)
def test_a_driver_not_installed_or_a_malformed_url_is_a_store_error(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says) as caught:
        open_store(url)
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.parametrize(
    ("option", "says"),
    [("bogus=1", 'invalid connection option "bogus"'), ("connect_timeout=soon", "bad value for connect_timeout")],
)
def test_an_option_the_driver_refuses_is_named(option: str, says: str) -> None:
    url = f"postgresql+psycopg://someone:s3cret-pw@127.0.0.1:1/db?{option}"
    with pytest.raises(StoreError, match=f"refused the connection \\(ProgrammingError: {says}") as caught:
        open_store(url)
    assert "s3cret-pw" not in str(caught.value)


def test_a_plain_postgresql_url_uses_the_driver_installed() -> None:
    with pytest.raises(StoreUnavailable):  # reaches for the server (none there), not for psycopg2
        open_store("postgresql://someone@127.0.0.1:1/nowhere?connect_timeout=2")


def test_unreachable_postgresql_is_reported_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store("postgresql+psycopg://someone:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_a_password_given_as_an_option_is_not_repeated() -> None:
    url = "postgresql+psycopg://someone@127.0.0.1:1/nowhere?password=s3cret-pw&connect_timeout=2"
    with pytest.raises(StoreUnavailable) as caught:
        open_store(url)
    assert "s3cret-pw" not in str(caught.value)
    assert "password=***" in str(caught.value)
    assert "s3cret-pw" not in repr(Store(create_engine(url)))


@pytest.mark.postgres
def test_a_database_that_is_not_there_is_named_as_the_cause() -> None:
    missing = require_postgres().set(database=f"fhir_cm_missing_{uuid.uuid4().hex[:8]}", password="s3cret-pw")
    with pytest.raises(StoreUnavailable, match=f'database "{missing.database}" does not exist') as caught:
        open_store(missing.render_as_string(hide_password=False))
    assert "s3cret-pw" not in str(caught.value)


@pytest.mark.postgres
def test_a_user_that_may_not_create_tables_is_told_so_at_the_first_start() -> None:
    """As on PostgreSQL 15 and later, where only the owner of ``public`` may create in it: the DBA
    made the database, the adapter's user connects to it."""
    admin = require_postgres()
    role = f"fhir_cm_test_user_{uuid.uuid4().hex[:8]}"
    with temporary_database() as url, psycopg.connect(_dsn(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        try:
            with psycopg.connect(_dsn(make_url(url)), autocommit=True) as db:
                db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            as_user = make_url(url).set(username=role).render_as_string(hide_password=False)
            with pytest.raises(StoreError, match="permission denied for schema public.*allowed to create tables"):
                open_store(as_user)
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _dsn(url: URL) -> str:
    return make_conninfo(host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database)


@pytest.mark.postgres
@pytest.mark.parametrize("style", ["German, DMY", "SQL, MDY", "Postgres, DMY"])
def test_times_read_back_whatever_date_style_the_database_is_set_to(style: str) -> None:
    at = dt.datetime(2024, 5, 1, 23, 30, 0, 5, tzinfo=dt.UTC)
    with temporary_database() as url:
        with psycopg.connect(_dsn(make_url(url)), autocommit=True) as db:
            db.execute(
                sql.SQL("ALTER DATABASE {} SET datestyle = {}").format(
                    sql.Identifier(make_url(url).database or ""), sql.Literal(style)
                )
            )
        with open_store(url) as store:
            with store.session() as s:
                record_audit(s, principal="cm-1", action="read", case_ids=["case-1"], now=at)
            with store.session(read_only=True) as s:
                assert [e.at for e in list_audit(s, since=at)] == [at]


def test_a_full_sqlite_file_says_so(sqlite_url: str, make_case: Callable[..., Case]) -> None:
    """SQLite answers a write that needs room it cannot have as it answers a full disk (SQLITE_FULL)."""
    with open_store(sqlite_url) as store:

        @event.listens_for(store.engine, "connect")
        def _no_room(dbapi_connection: Any, _record: Any) -> None:
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

        store.engine.dispose()
        with pytest.raises(StoreUnavailable, match="database or disk is full"), store.session() as s:
            for n in range(200):
                save_case(s, make_case(f"case-{n}", plan_summary="x" * 5000))


def test_repr_hides_the_password() -> None:
    store = Store(create_engine("postgresql+psycopg://u:hunter2@db.example/x"))
    assert "hunter2" not in repr(store)
    assert "db.example" in repr(store)


def test_several_stores_on_one_sqlite_file_never_lose_or_refuse_a_change(
    sqlite_url: str, make_case: Callable[..., Case]
) -> None:
    """Separate engines are separate connections, as separate processes would have.

    Each save reads the case and writes it back in one transaction, the pattern that fails with
    "database is locked" when SQLite transactions begin deferred.
    """
    with open_store(sqlite_url) as first, first.session() as s:
        save_case(s, make_case(plan_summary="start"))
    workers, saves = 4, 15

    def work(n: int, go: Callable[[], object]) -> None:
        with open_store(sqlite_url) as store:
            go()
            for i in range(saves):
                with store.session() as s:
                    case = get_case(s, "case-1")
                    assert case is not None
                    save_case(s, case.model_copy(update={"plan_summary": f"worker {n} save {i}"}))

    run_together(workers, work)
    with open_store(sqlite_url) as store, store.session(read_only=True) as s:
        record = get_case_record(s, "case-1")
        assert record is not None
        assert record.revision == 1 + workers * saves


def test_many_processes_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The first connections race to switch a new file to WAL; none of them may fail for it.

    SQLite answers that switch with "database is locked" without waiting out the busy timeout, so
    stores started together on a fresh file (a worker pool, a test run) used to fail at random.
    """
    workers = 8
    for attempt in range(20):
        url = f"sqlite:///{tmp_path / f'fresh-{attempt}.db'}"
        opened: list[str] = []

        def work(n: int, go: Callable[[], object], url: str = url, opened: list[str] = opened) -> None:
            go()
            with open_store(url) as store, store.session(read_only=True) as s:
                opened.append(s.execute(text("PRAGMA journal_mode")).scalar())

        run_together(workers, work)
        assert opened == ["wal"] * workers
