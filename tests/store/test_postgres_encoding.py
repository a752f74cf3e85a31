"""PostgreSQL databases made with another encoding than UTF8, as older hospital servers hold them:
SQL_ASCII keeps whatever bytes it is given, LATIN1 holds 256 characters."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from fhir_cm.domain import Case, Party, PartyKind
from fhir_cm.store import add_quarantine, get_case, list_quarantine, open_store, save_case
from tests.pg import require_postgres

pytestmark = pytest.mark.postgres


@contextmanager
def database_in(encoding: str) -> Iterator[str]:
    """A new database of that encoding (C collation, as such databases are made); yields its URL."""
    admin = require_postgres()
    name = f"fhir_cm_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    connect = {"host": admin.host, "port": admin.port, "user": admin.username, "password": admin.password}
    statement = "CREATE DATABASE {} ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    with psycopg.connect(**connect, dbname=admin.database, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Literal(encoding)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**connect, dbname=admin.database, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def named(make_case: Callable[..., Case], name: str) -> Case:
    return make_case(f"case-{uuid.uuid4().hex[:8]}", patient=Party(kind=PartyKind.PATIENT, id="p-1", name=name))


def test_a_sql_ascii_database_opens_and_keeps_any_text(make_case: Callable[..., Case]) -> None:
    case = named(make_case, "Łukasz Müller 日本")
    with database_in("SQL_ASCII") as url, open_store(url) as store:
        with store.session() as s:
            save_case(s, case)
            add_quarantine(s, source="http://a.example/fhir", raw="née 😀", reason="r", now=dt.datetime.now(dt.UTC))
        with store.session(read_only=True) as s:
            assert get_case(s, case.id) == case
            assert [q.raw for q in list_quarantine(s)] == ["née 😀"]


def test_a_latin1_database_keeps_reading_cases_as_it_always_has(make_case: Callable[..., Case]) -> None:
    """Cases' JSON went to it as UTF-8 bytes (psycopg's way with JSON), whatever it can hold: left so,
    or the cases stored would read back garbled."""
    case = named(make_case, "Łukasz Müller 日本")
    with database_in("LATIN1") as url, open_store(url) as store:
        with store.session() as s:
            save_case(s, case)
        with store.session(read_only=True) as s:
            assert get_case(s, case.id) == case
