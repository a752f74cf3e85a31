"""Engines tuned per backend so that several processes can share one store safely.

SQLite: WAL (readers do not block the writer), a busy timeout (a writer waits for another instead of
failing), and write transactions that start with ``BEGIN IMMEDIATE``. The last one matters: Python's
sqlite3 otherwise begins lazily, so a transaction that reads and then writes can find another
process committed in between and fail at once with "database is locked", busy timeout or not.
PostgreSQL needs nothing special here; the outbox uses row locks (``_outbox``).

Both: no text reaches the database with a NUL character in it (``_without_nul``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.pool import StaticPool

from .. import decimals
from ._errors import StoreError

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "NUL_REPLACEMENT",
    "READ_ONLY",
    "make_engine",
    "redacted",
    "secrets_of",
    "without_nul",
]

#: How long a SQLite writer waits for another process's write to finish before giving up.
BUSY_TIMEOUT_SECONDS = 30.0
#: Connections each process may hold: room for every thread that serves requests to hold a session
#: while it waits for the audit group (``_audit_group``), whose writer needs one more. With fewer, a
#: burst of requests holding all of them leaves the writer waiting for a connection none will return.
POOL_SIZE = 10
MAX_OVERFLOW = 20
#: A pooled PostgreSQL connection idle longer than this is pinged before it is handed out; one used
#: more recently is trusted, as connection pools commonly do (HikariCP's 500 ms "alive bypass window").
PING_AFTER_IDLE_SECONDS = 1.0

#: Execution option marking a connection as read-only: on SQLite it begins a deferred transaction,
#: which does not queue behind writers.
READ_ONLY = "fhir_cm_read_only"


#: Query options of a database URL that hold a secret: libpq takes the password there too
#: (``postgresql://db.example/cm?user=cm&password=…``, as some deployment tools write it).
_SECRET_OPTIONS = frozenset({"password", "sslpassword"})
_MASK = "***"


def redacted(url: str | URL) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        parsed = make_url(url)
        hidden = {key: _MASK for key in parsed.query if key.lower() in _SECRET_OPTIONS}
        rendered = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"
    return rendered.replace("=%2A%2A%2A", f"={_MASK}")


def secrets_of(url: str | URL) -> list[str]:
    """The secrets a URL holds (its password, in place or as an option), to mask in a driver's words."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return []
    options = [v for key, value in parsed.query.items() if key.lower() in _SECRET_OPTIONS for v in _values(value)]
    return [secret for secret in (parsed.password, *options) if isinstance(secret, str) and secret]


def _values(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def _dumps(value: Any) -> str:
    return decimals.dumps(value).decode()


#: What a NUL character in text becomes: the replacement character, as for bytes that are no UTF-8.
NUL_REPLACEMENT = "\ufffd"


def without_nul(value: str) -> str:
    """The text as the store keeps it (``_without_nul``): for code that compares with what it read back."""
    return value.replace("\x00", NUL_REPLACEMENT)


def _clean(value: Any) -> Any:
    return without_nul(value) if isinstance(value, str) and "\x00" in value else value


def _clean_row(row: Any) -> Any:
    if isinstance(row, Mapping):
        if any(isinstance(v, str) and "\x00" in v for v in row.values()):
            return {k: _clean(v) for k, v in row.items()}
    elif isinstance(row, Sequence) and any(isinstance(v, str) and "\x00" in v for v in row):
        cleaned = [_clean(v) for v in row]
        return tuple(cleaned) if isinstance(row, tuple) else cleaned
    return row


def _without_nul(
    _conn: Connection, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
) -> tuple[str, Any]:
    """The statement's parameters with every NUL in text replaced (``NUL_REPLACEMENT``).

    PostgreSQL text cannot hold NUL, and psycopg refuses the whole statement — a lookup as much as
    a write — so one resource a server sent with a NUL in an identifier stopped every pull, and
    its quarantine entry could not be written. FHIR strings may not contain it anyway. Replaced on
    both backends, so that they store and find the same: a value looked up finds what was stored
    for it, and nothing stored holds a NUL. JSON columns are not concerned: their text escapes it.
    """
    if executemany and isinstance(parameters, Sequence):
        return statement, [_clean_row(row) for row in parameters]
    return statement, _clean_row(parameters)


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for a ``sqlite:///FILE`` or ``postgresql+psycopg://…`` URL, set up for shared use."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is no number
        raise StoreError(f"not a database URL: {redacted(url)!r}; {_FORMS}") from None
    if parsed.drivername == "postgres":  # libpq's other spelling (psql, most hosting platforms' URLs)
        parsed = parsed.set(drivername="postgresql")
    # The driver is read from the name alone: asking SQLAlchemy for it loads a dialect that may not exist.
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgresql" and not driver:
        parsed, driver = parsed.set(drivername="postgresql+psycopg"), "psycopg"  # the driver installed with fhir-cm
    elif backend == "sqlite" and not driver:
        driver = "pysqlite"
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {backend!r}: {_FORMS}")
    if (backend, driver) not in _DRIVERS:
        raise StoreError(f"unsupported database driver {driver!r}: {_FORMS}")
    if backend == "sqlite" and parsed.host:  # sqlite://fhir-cm.db: the file name read as a host
        raise StoreError(f"a SQLite URL names a file after three slashes: {_FORMS}")
    common: dict[str, Any] = {
        "echo": echo,
        # Statement parameters carry case data: keep them out of logs and exception messages.
        "hide_parameters": True,
        "json_serializer": _dumps,
        "json_deserializer": decimals.loads,
    }
    try:
        if backend == "sqlite":
            engine = _sqlite_engine(parsed, common)
        else:
            engine = _postgresql_engine(parsed, common)
    except ValueError:  # a query option of the wrong kind (?timeout=abc)
        raise StoreError(f"a database URL option is not valid: {redacted(url)!r}") from None
    event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
    return engine


#: What the store's URL may be, said with every refusal of one.
_FORMS = "use sqlite:///FILE (sqlite:////ABSOLUTE/PATH) or postgresql://USER@HOST/DB"
#: The (backend, driver) pairs fhir-cm installs and is tested on.
_DRIVERS = frozenset({("sqlite", "pysqlite"), ("postgresql", "psycopg")})


def _ensure_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL once; later connections find it already set.

    Switching needs a moment of exclusive access, and SQLite answers "database is locked" at once,
    without consulting the busy timeout, when another connection opens the file at that moment. WAL is
    a property of the file, so the only connections that race here are the first few on a new store:
    retry them within the busy timeout rather than fail a process that merely started at the same time.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            contended = "locked" in str(exc) or "busy" in str(exc)
            if not contended or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _postgresql_engine(url: URL, common: dict[str, Any]) -> Engine:
    engine = create_engine(url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, **common)
    _ping_when_idle(engine)

    # First among the connect listeners: before SQLAlchemy's own first queries (the server's version).
    @event.listens_for(engine, "connect", insert=True)
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # psycopg reads times in PostgreSQL's ISO style only: a database, role or server set to another
        # (``datestyle = 'German, DMY'``) failed every read of a time. A SQL_ASCII database keeps the
        # bytes it is given, and psycopg read its text as bytes (opening the store failed with a
        # TypeError): text goes to and from it as UTF-8, which it keeps as it is. (Other encodings
        # are left alone: a LATIN1 database has held cases' JSON as psycopg wrote it, UTF-8 bytes.)
        # Set outside a transaction, so that it holds for the session.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute("SET DateStyle TO 'ISO'")
        if dbapi_connection.info.parameter_status("client_encoding") == "SQL_ASCII":
            dbapi_connection.execute("SET client_encoding TO 'UTF8'")
        dbapi_connection.autocommit = autocommit

    return engine


#: Where a pooled connection's record keeps when it was last returned to the pool (or opened).
_USED_AT = "fhir_cm_used_at"


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection before handing it out only when it sat in the pool for a while.

    A connection is found dead after the database restarted, or after a proxy or firewall dropped it
    for idling: pinging then replaces it (and every connection pooled before it) before a request
    fails. SQLAlchemy's ``pool_pre_ping`` pinged on every checkout; serving the API, that was one
    round trip in four, for connections that had answered a few milliseconds before. One that dies
    within the window fails its statement (the store is unavailable, once), and SQLAlchemy then
    replaces the pool's connections as it does for any disconnect.
    """

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_USED_AT] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_USED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        if time.monotonic() - record.info.get(_USED_AT, 0.0) <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool replaces this connection and every one opened before it, and tries again.
            raise InvalidatePoolError(f"connection found closed ({type(exc).__name__})") from exc


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_engine(url: URL, common: dict[str, Any]) -> Engine:
    memory = _is_memory(url)
    connect_args = {"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False}
    # An in-memory database exists once per connection: share one connection or the schema vanishes.
    pool = {"pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW}
    extra: dict[str, Any] = {"poolclass": StaticPool} if memory else pool
    engine = create_engine(url, connect_args=connect_args, **extra, **common)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from sqlite3 so that _on_begin decides how to begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if not memory:
            _ensure_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode, much faster than FULL
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine
