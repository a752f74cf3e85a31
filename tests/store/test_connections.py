"""Pooled PostgreSQL connections: pinged after idling, trusted while in use; lookups outside a transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import text

from fhir_cm.domain import Case
from fhir_cm.store import Store, StoreUnavailable, get_case_record, open_store, save_case
from fhir_cm.store import _engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(pg_store_url: str) -> Iterator[Store]:
    with open_store(pg_store_url) as store:
        yield store


def _backend_pids(store: Store) -> set[int]:
    """The server processes behind the store's pooled connections (each session asks its own)."""
    pids = set()
    for _ in range(3):
        with store.session() as s:
            pids.add(s.execute(text("SELECT pg_backend_pid()")).scalar_one())
    return pids


def _terminate(url: str, pids: set[int]) -> None:
    """What a database restart or a proxy dropping idle connections does to the pool: its connections die."""
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_that_died_while_idle_is_replaced_before_a_request_fails(
    pg_store: Store, pg_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = _backend_pids(pg_store)
    _terminate(pg_store_url, pids)
    monkeypatch.setattr(_engine, "PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection has idled long enough

    after = _backend_pids(pg_store)

    assert after.isdisjoint(pids)


def test_a_connection_in_use_moments_ago_is_not_pinged(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    pinged: list[object] = []
    dialect = pg_store.engine.dialect
    monkeypatch.setattr(dialect, "do_ping", lambda conn: pinged.append(conn) or True)
    _backend_pids(pg_store)
    assert pinged == []

    monkeypatch.setattr(_engine, "PING_AFTER_IDLE_SECONDS", 0.0)
    _backend_pids(pg_store)
    assert len(pinged) == 3


def test_a_connection_that_died_in_the_window_fails_once_then_the_pool_is_replaced(
    pg_store: Store, pg_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_engine, "PING_AFTER_IDLE_SECONDS", 3600.0)  # every connection was in use moments ago
    pids = _backend_pids(pg_store)
    _terminate(pg_store_url, pids)

    with pytest.raises(StoreUnavailable), pg_store.session() as s:
        s.execute(text("SELECT 1"))
    after = _backend_pids(pg_store)

    assert after.isdisjoint(pids)


def test_a_lookup_runs_each_statement_on_its_own(pg_store: Store, make_case: Callable[..., Case]) -> None:
    """No BEGIN and COMMIT around it: each statement is its own transaction (``now()`` is its start)."""
    with pg_store.session() as s:
        save_case(s, make_case("case-1"))
    ask = text("SELECT now(), pg_sleep(0.01)")
    with pg_store.lookup() as s:
        first, second = s.execute(ask).one()[0], s.execute(ask).one()[0]
        record = get_case_record(s, "case-1", cache=pg_store.cases)
    with pg_store.session(read_only=True) as s:
        one, other = s.execute(ask).one()[0], s.execute(ask).one()[0]

    assert first < second
    assert one == other
    assert record is not None and record.case.id == "case-1"
    with pg_store.session() as s:  # the connection went back to the pool as it came
        assert s.execute(ask).one()[0] == s.execute(ask).one()[0]
