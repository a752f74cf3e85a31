"""The sync ledger: for each server, what it holds of each resource (its id there, versionId, last copy).

This is what makes pushes idempotent and updates safe: the pusher knows whether to create or
update, sends ``If-Match`` with the versionId, and merges onto the last server copy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ._dialect import insert, normal_base
from ._tables import LedgerRow
from ._types import connection_of, utcnow

__all__ = [
    "LedgerEntry",
    "find_ledger",
    "forget_ledger",
    "get_ledger",
    "ledger_by_server_id",
    "ledger_holds_any",
    "list_ledger",
    "put_ledger",
]


class LedgerEntry(BaseModel):
    """What one server holds of one resource. ``content_hash`` is of the content last sent or seen."""

    model_config = ConfigDict(frozen=True)

    server_base: str
    resource_type: str
    key: str
    case_id: str | None = None
    server_id: str | None = None
    version_id: str | None = None
    content_hash: str | None = None
    server_copy: dict[str, Any] | None = None
    last_updated: str | None = None
    synced_at: dt.datetime | None = None


_COLUMNS = tuple(LedgerRow.__table__.c)
_WITHOUT_COPIES = tuple(c for c in _COLUMNS if c.name != "server_copy")
_FIELDS = tuple(LedgerEntry.model_fields)
_KEY = ("server_base", "resource_type", "key")


def put_ledger(session: Session, entries: Iterable[LedgerEntry], *, now: dt.datetime | None = None) -> None:
    """Record (insert or replace) ledger entries; ``synced_at`` is set to now when not given."""
    now = now or utcnow()
    # The fields as they are, not ``model_dump()``: that would copy every server copy, element by
    # element, only for it to be serialised next (a good part of the cost of recording a push).
    rows = [
        {name: getattr(e, name) for name in _FIELDS}
        | {"server_base": normal_base(e.server_base), "synced_at": e.synced_at or now}
        for e in entries
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql":  # SQLite serialises writers: no concurrent insert can interleave
        connection_of(session).execute(_upsert(dialect), rows)
        return
    # Two workers recording the same new resource at once (the adapter's Device, found by both):
    # PostgreSQL's ON CONFLICT covers only the business key, so the second insert can trip the
    # unique server id first and fail. Once the first has committed, the same upsert updates.
    try:
        with session.begin_nested():
            connection_of(session).execute(_upsert(dialect), rows)
    except IntegrityError:
        connection_of(session).execute(_upsert(dialect), rows)


def forget_ledger(session: Session, case_id: str, resource_type: str, key: str) -> int:
    """Forget what every server was known to hold of one resource of a case (a resource deleted on
    the server that a person decided to write again: the next push creates it, where an update of
    the dead copy was refused each time). Returns the entries removed."""
    removed = connection_of(session).execute(
        delete(LedgerRow).where(
            LedgerRow.case_id == case_id, LedgerRow.resource_type == resource_type, LedgerRow.key == key
        )
    )
    return int(getattr(removed, "rowcount", 0) or 0)


@cache
def _upsert(dialect: str) -> Any:
    # Built once per backend: constructing an ON CONFLICT statement costs more than running it.
    stmt = insert(dialect, LedgerRow)
    replaced = {c.name: stmt.excluded[c.name] for c in _COLUMNS if c.name not in _KEY}
    return stmt.on_conflict_do_update(index_elements=list(_KEY), set_=replaced)


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry.model_validate(dict(row._mapping))


def _one(session: Session, *where: Any) -> LedgerEntry | None:
    row = connection_of(session).execute(select(*_COLUMNS).where(*where)).one_or_none()
    return None if row is None else _entry(row)


def get_ledger(session: Session, server_base: str, resource_type: str, key: str) -> LedgerEntry | None:
    """The ledger entry of one resource (by business key) on one server, or None if never synced there."""
    return _one(
        session,
        LedgerRow.server_base == normal_base(server_base),
        LedgerRow.resource_type == resource_type,
        LedgerRow.key == key,
    )


def ledger_by_server_id(session: Session, server_base: str, resource_type: str, server_id: str) -> LedgerEntry | None:
    """The ledger entry of the resource a server calls ``resource_type/server_id`` (for pulls), or None."""
    return _one(
        session,
        LedgerRow.server_base == normal_base(server_base),
        LedgerRow.resource_type == resource_type,
        LedgerRow.server_id == server_id,
    )


def find_ledger(
    session: Session,
    server_base: str,
    resource_type: str,
    *,
    keys: Iterable[str] = (),
    server_ids: Iterable[str] = (),
    copies: bool = True,
) -> list[LedgerEntry]:
    """The entries of one type on one server whose key or server id is among those given, in one query.

    For a page of a pull: what the ledger holds of two hundred resources, without two hundred lookups.
    ``copies=False``: without their server copies (``server_copy`` None), for a caller that places
    and dedupes by the other fields — the copies' JSON is most of what reading an entry costs.
    """
    keys, server_ids = list(dict.fromkeys(keys)), list(dict.fromkeys(server_ids))
    if not keys and not server_ids:
        return []
    # Only the lists given: an empty IN beside the other would keep the database from its indexes.
    given = [
        column.in_(values) for column, values in ((LedgerRow.key, keys), (LedgerRow.server_id, server_ids)) if values
    ]
    query = select(*(_COLUMNS if copies else _WITHOUT_COPIES)).where(
        LedgerRow.server_base == normal_base(server_base),
        LedgerRow.resource_type == resource_type,
        or_(*given),
    )
    return [_entry(row) for row in connection_of(session).execute(query)]


def ledger_holds_any(session: Session, server_base: str) -> bool:
    """Whether the ledger has any entry for ``server_base``: until a first pull from a server merges,
    no page of it can find anything there, and one indexed query tells it so."""
    query = select(LedgerRow.key).where(LedgerRow.server_base == normal_base(server_base)).limit(1)
    return connection_of(session).execute(query).first() is not None


def list_ledger(
    session: Session, server_base: str, *, case_id: str | None = None, case_ids: Iterable[str] | None = None
) -> list[LedgerEntry]:
    """Every ledger entry for a server (optionally of one case, or of several), ordered by type and key."""
    query = select(*_COLUMNS).where(LedgerRow.server_base == normal_base(server_base))
    if case_id is None and case_ids is None:
        return [
            _entry(row)
            for row in connection_of(session).execute(query.order_by(LedgerRow.resource_type, LedgerRow.key))
        ]
    if case_id is not None:
        query = query.where(LedgerRow.case_id == case_id)
    if case_ids is not None:
        query = query.where(LedgerRow.case_id.in_(list(case_ids)))
    # Sorted here, not by the database: asked to sort, SQLite read the server's entries in primary key
    # order (all of them) rather than a few cases' through (server_base, case_id).
    entries = [_entry(row) for row in connection_of(session).execute(query)]
    return sorted(entries, key=lambda e: (e.resource_type, e.key))
