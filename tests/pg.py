"""The PostgreSQL server every machine of this project runs (127.0.0.1:5432, trust auth), for tests.

Tests get a database of their own, created fresh and dropped afterwards, so runs never collide.
Where no server answers (a newcomer's laptop) the tests are skipped with a message saying so; in CI
(the ``CI`` environment variable is set) that is a failure instead: a skip must not hide a broken
set-up. ``FHIR_CM_TEST_POSTGRES`` may name another server (a SQLAlchemy URL of a database to
connect to for creating and dropping the test databases).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

__all__ = ["postgres_admin_url", "require_postgres", "temporary_database", "temporary_schema"]

HOST, PORT, DATABASE = "127.0.0.1", 5432, "test"
USERS = ("postgres", "root")
ENV_URL = "FHIR_CM_TEST_POSTGRES"


def _candidates() -> list[URL]:
    if url := os.environ.get(ENV_URL):
        return [make_url(url).set(drivername="postgresql+psycopg")]
    return [URL.create("postgresql+psycopg", username=u, host=HOST, port=PORT, database=DATABASE) for u in USERS]


def _connect(url: URL) -> psycopg.Connection:
    return psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
        connect_timeout=3,
        autocommit=True,
    )


@functools.cache
def postgres_admin_url() -> URL | str:
    """The URL of a database the tests can connect to and create databases from, or why there is none."""
    reasons = []
    for url in _candidates():
        try:
            with _connect(url):
                return url
        except psycopg.Error as exc:
            reasons.append(f"{url.username}: {str(exc).strip().splitlines()[0]}")
    return "; ".join(reasons)


def require_postgres() -> URL:
    """The admin URL, or skip the test (fail it in CI) with a message that says what is missing."""
    found = postgres_admin_url()
    if isinstance(found, URL):
        return found
    where = ", ".join(sorted({f"{u.host}:{u.port}" for u in _candidates()}))
    message = f"PostgreSQL not reachable at {where}: {found}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drop_orphans(conn: psycopg.Connection, prefix: str) -> None:
    """Drop databases left by test runs on this machine that were killed before they could clean up.

    Names carry the creating process id; a database whose process is gone is an orphan. Only for
    the local server: a process id means nothing on another machine.
    """
    if os.environ.get(ENV_URL):
        return
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}\\_%",)).fetchall()
    for (name,) in rows:
        parts = name[len(prefix) + 1 :].split("_")
        if len(parts) == 2 and parts[0].isdigit() and not _alive(int(parts[0])):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def temporary_database(prefix: str = "fhir_cm_test") -> Iterator[str]:
    """A new, empty database for the duration of the block; yields its SQLAlchemy URL, then drops it."""
    admin = require_postgres()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    with _connect(admin) as conn:
        _drop_orphans(conn, prefix)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with _connect(admin) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def temporary_schema(database_url: str, prefix: str = "fhir_cm_test") -> Iterator[str]:
    """A new, empty schema in an existing database, dropped afterwards; cheaper than a new database.

    Yields a URL whose connections have the schema first on their ``search_path``, so everything
    made through it (tables, Alembic's version table) lands there.
    """
    url = make_url(database_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with _connect(url) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield url.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(hide_password=False)
    finally:
        with _connect(url) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
