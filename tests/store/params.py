"""The drivers' limit on the bound parameters of one statement, for tests of statements that could
pass it: 65,535 on PostgreSQL (psycopg), 32,766 in a SQLite built with the defaults — this machine's
may allow more, so SQLite connections are given the stock limit here."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event

from fhir_cm.store import Store

#: SQLITE_MAX_VARIABLE_NUMBER of a SQLite built with the defaults.
STOCK_SQLITE_LIMIT = 32_766


def stock_sqlite_limit(store: Store) -> None:
    """Give every new SQLite connection of ``store`` the limit of a stock build (PostgreSQL has its own)."""
    if store.backend != "sqlite":
        return

    @event.listens_for(store.engine, "connect")
    def _limit(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, STOCK_SQLITE_LIMIT)

    store.engine.dispose()  # connections made before the listener would not have it
