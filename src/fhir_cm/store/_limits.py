"""What each server refuses in a transaction, remembered between runs.

A server that refused a transaction for its number of entries (Medplum: more than 8 with a
conditional entry) or its kind will refuse the next one the same way; remembering the limit per
server base lets a later run — another process, a fresh client — send parts of the right size at
once instead of being refused again first. The limit is only ever what a refusal taught (or what a
person set with ``FHIR_CM_MAX_TRANSACTION_ENTRIES``, which the sync layer prefers); the reason is the
server's own words, without request content.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._dialect import insert, normal_base
from ._tables import URL, Base
from ._types import UTCDateTime, utcnow

__all__ = ["ServerLimit", "forget_server_limit", "get_server_limit", "set_server_limit"]

REASON = 300


class ServerLimitRow(Base):
    """One server's transaction limit: at most this many entries (0: no transactions at all)."""

    __tablename__ = "server_limits"

    server_base: Mapped[str] = mapped_column(String(URL), primary_key=True)
    max_transaction_entries: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(REASON))
    learnt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ServerLimit(BaseModel):
    """A remembered transaction limit of one server, and why it was learnt."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    server_base: str
    max_transaction_entries: int
    reason: str | None
    learnt_at: dt.datetime


def get_server_limit(session: Session, server_base: str) -> ServerLimit | None:
    """The limit remembered for ``server_base``, or None when it never refused a transaction."""
    row = session.get(ServerLimitRow, normal_base(server_base))
    return ServerLimit.model_validate(row) if row is not None else None


def set_server_limit(
    session: Session, server_base: str, max_entries: int, reason: str | None, *, now: dt.datetime | None = None
) -> ServerLimit:
    """Remember (or replace) the limit of ``server_base``; ``reason`` is cut to fit."""
    if max_entries < 0:
        raise ValueError("a transaction limit is 0 (no transactions) or more")
    values = {
        "server_base": normal_base(server_base),
        "max_transaction_entries": max_entries,
        "reason": reason[:REASON] if reason else None,
        "learnt_at": now or utcnow(),
    }
    stmt = insert(session, ServerLimitRow).values(**values)
    session.execute(stmt.on_conflict_do_update(index_elements=["server_base"], set_=values))
    row = session.execute(
        select(ServerLimitRow).where(ServerLimitRow.server_base == values["server_base"])
    ).scalar_one()
    session.refresh(row)
    return ServerLimit.model_validate(row)


def forget_server_limit(session: Session, server_base: str) -> bool:
    """Drop the remembered limit (after the server's configuration changed); True if there was one."""
    result = session.execute(delete(ServerLimitRow).where(ServerLimitRow.server_base == normal_base(server_base)))
    return bool(getattr(result, "rowcount", 0))
