"""The store handle: an engine, a session factory, and the one place database errors are translated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ._audit_group import AuditGroup
from ._case_cache import CaseCache
from ._engine import READ_ONLY, make_engine, redacted, secrets_of
from ._errors import StoreError, StoreUnavailable
from ._migrate import upgrade
from ._stamps import raise_counters

__all__ = ["Store", "open_store"]


class Store:
    """An open store. Use ``with store.session() as s:`` for one transaction; ``close()`` when done."""

    def __init__(self, engine: Engine, *, case_cache: int = 2000) -> None:
        self.engine = engine
        #: Decoded cases by revision, for readers (``get_case_record(..., cache=store.cases)``).
        self.cases = CaseCache(case_cache)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # A reader sees the store of one moment, as SQLite's read transactions do: PostgreSQL's default
        # (READ COMMITTED) lets each statement see what committed before it, so an export reading the
        # cases, then their resources, mixed a case as it was with resources as a pull had made them.
        reads: dict[str, object] = {READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            reads["isolation_level"] = "REPEATABLE READ"
        self._read_sessions = sessionmaker(engine.execution_options(**reads), expire_on_commit=False)
        # A lookup is one statement, which is its own snapshot: on PostgreSQL it runs outside a
        # transaction, without the BEGIN and COMMIT that made one row read three round trips. It runs
        # on a connection, not in an ORM session: the store reads rows, not objects, and a session's
        # set-up and tear-down cost more CPU than the statement itself (0.29 against 0.16 ms for the
        # API key's query), several times a request.
        self._lookups = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine.execution_options(**{READ_ONLY: True})
        )
        # Writers of cases and resources raise their counters as they commit (``_stamps``).
        event.listen(self._sessions, "before_commit", raise_counters)
        event.listen(self._read_sessions, "before_commit", raise_counters)
        #: Audit rows of reads, committed in groups (``_audit_group``): ``store.audit.record(...)``.
        self.audit = AuditGroup(self)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def threadsafe(self) -> bool:
        """Whether sessions may run in several threads at once: not for in-memory SQLite, which is
        one connection shared by every session."""
        return not isinstance(self.engine.pool, StaticPool)

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Everything done in one block commits together, which is how a case change and its outbox
        row stay in step. ``read_only`` sessions read one snapshot of the store (on PostgreSQL
        at REPEATABLE READ); on SQLite they do not queue behind writers. Writing in one is not
        prevented, but may fail with "database is locked" (or a serialisation failure) under contention.
        """
        factory = self._read_sessions if read_only else self._sessions
        with _translated(self.engine), factory() as session, session.begin():
            yield session

    @contextmanager
    def lookup(self) -> Iterator[Connection]:
        """A connection for reads that need no snapshot across statements: one statement, or several
        each of which stands alone (a case's revision, then its row, which carries its own revision).
        The store's read functions take it where they take a session (``Reader``).

        Requests read the store this way to authenticate and to check whether what they keep is
        still current, several times a request: on PostgreSQL each read is then one round trip.
        Not for writing: on PostgreSQL each statement commits on its own; on SQLite the connection's
        read transaction is rolled back when the block ends.
        """
        with _translated(self.engine), self._lookups.connect() as connection:
            yield connection

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({redacted(self.engine.url)!r})"


@contextmanager
def _translated(engine: Engine) -> Iterator[None]:
    """Turn driver errors into store errors that name the cause but carry no row data."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable(
            f"database {redacted(engine.url)} unavailable or locked ({_cause(exc, engine)})"
        ) from exc
    except DBAPIError as exc:
        raise StoreError(f"database refused the operation ({type(exc.orig).__name__})") from exc


#: SQLSTATE of "permission denied" (PostgreSQL), and what an operator does about it.
_NO_PRIVILEGE = "42501"
_PRIVILEGE_HINT = "; the database user must be allowed to create tables in its schema"


@contextmanager
def _migrating(engine: Engine) -> Iterator[None]:
    """Name the cause of a refusal while the schema is brought up to date: its statements create and
    alter tables, and the driver's words of them hold no case data. A first start on PostgreSQL 15,
    whose ``public`` schema only its owner may create in, said "refused the operation" and no more."""
    try:
        yield
    except OperationalError:
        raise  # ``_translated`` names it
    except DBAPIError as exc:
        if exc.statement is None:  # refused before any statement: an option of the URL (?sslmode=bogus)
            raise StoreError(f"database {redacted(engine.url)} refused the connection ({_cause(exc, engine)})") from exc
        hint = _PRIVILEGE_HINT if getattr(exc.orig, "sqlstate", None) == _NO_PRIVILEGE else ""
        raise StoreError(
            f"database {redacted(engine.url)} refused to bring the fhir-cm schema up to date ({_cause(exc, engine)}){hint}"
        ) from exc


#: How much of the driver's words a message keeps.
_CAUSE = 300


def _cause(exc: DBAPIError, engine: Engine) -> str:
    """The driver's error and its first line: what an operator acts on — no such database, password
    refused, connection refused, disk full, read-only file, locked. Words of a connection or of the
    database file, not of a row; a secret of the URL a driver repeats is masked all the same."""
    lines = str(exc.orig).strip().splitlines()
    said = _masked(lines[0].strip() if lines else "", engine)
    name = type(exc.orig).__name__
    return f"{name}: {said[:_CAUSE]}" if said else name


def _masked(said: str, engine: Engine) -> str:
    """The driver's words with every secret of the URL masked (a driver may repeat one)."""
    for secret in secrets_of(engine.url):
        said = said.replace(secret, "***")
    return said


def _connect(engine: Engine) -> None:
    """Reach the database once, saying why not in the driver's words.

    "unavailable or locked" alone left a first PostgreSQL set-up guessing between a server down, a
    role or database that does not exist and a password refused; a SQLite file in a folder that does
    not exist read the same. The driver's first line says which, and a connection's failure holds no
    row data (nor the password: only the redacted URL is named).
    """
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        said = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
        said = _masked(said.removeprefix("connection failed: "), engine)
        raise StoreUnavailable(f"cannot open the store {redacted(engine.url)}: {said}") from exc


def open_store(url: str, *, migrate: bool = True, echo: bool = False, case_cache: int = 2000) -> Store:
    """Open the store at a SQLAlchemy URL and bring its schema to the newest revision.

    ``sqlite:///fhir-cm.db`` (a file, created if missing) or ``postgresql+psycopg://…``. With
    ``migrate=False`` the schema is left as it is (for tools that only inspect). ``case_cache`` is how
    many decoded cases readers keep (``Store.cases``; 0: none).
    """
    engine = make_engine(url, echo=echo)
    try:
        with _translated(engine), _migrating(engine):
            _connect(engine)
            if migrate:
                upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, case_cache=case_cache)
