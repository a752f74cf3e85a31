"""Watermarks of incremental pulls: per server and resource type, the ``_lastUpdated`` reached so far.

The value is kept exactly as the server wrote it (a FHIR instant), so the next pull asks with the
server's own precision and time zone. It only ever moves forward: two workers pulling at once
cannot drag it back.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ._dialect import insert, normal_base
from ._tables import WatermarkRow
from ._types import utcnow

__all__ = ["Watermark", "forget_watermarks", "get_watermark", "list_watermarks", "set_watermark"]


class Watermark(BaseModel):
    """How far the pulls of one resource type from one server have got, and when that last moved."""

    model_config = ConfigDict(frozen=True)

    server_base: str
    resource_type: str
    last_updated: str
    updated_at: dt.datetime


def _instant(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"watermark {value!r} is not a FHIR instant (e.g. 2024-05-01T10:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def get_watermark(session: Session, server_base: str, resource_type: str) -> str | None:
    """The ``_lastUpdated`` the last pull of this type from this server reached, or None (pull everything)."""
    query = select(WatermarkRow.last_updated).where(
        WatermarkRow.server_base == normal_base(server_base), WatermarkRow.resource_type == resource_type
    )
    return session.execute(query).scalar_one_or_none()


def set_watermark(
    session: Session, server_base: str, resource_type: str, last_updated: str, *, now: dt.datetime | None = None
) -> str:
    """Move the watermark forward to ``last_updated`` (an earlier value is ignored); returns the watermark."""
    new = _instant(last_updated)
    now = now or utcnow()
    base = normal_base(server_base)
    key = (WatermarkRow.server_base == base, WatermarkRow.resource_type == resource_type)
    stmt = insert(session, WatermarkRow).values(
        server_base=base, resource_type=resource_type, last_updated=last_updated, updated_at=now
    )
    if session.execute(stmt.on_conflict_do_nothing().returning(WatermarkRow.last_updated)).first() is not None:
        return last_updated
    current = session.execute(select(WatermarkRow.last_updated).where(*key).with_for_update()).scalar_one()
    if new <= _instant(current):
        return current
    session.execute(update(WatermarkRow).where(*key).values(last_updated=last_updated, updated_at=now))
    return last_updated


def forget_watermarks(session: Session, server_base: str, *, starting: str, keeping: str) -> list[str]:
    """Drop the server's watermarks whose key starts with ``starting`` but not with ``keeping``, and
    return their keys: what they said was read is no longer what the store holds (screening's facts
    were kept under other rules), so no later run may continue from them."""
    base = normal_base(server_base)
    query = select(WatermarkRow.resource_type).where(
        WatermarkRow.server_base == base, WatermarkRow.resource_type.startswith(starting, autoescape=True)
    )
    stale = [key for key in session.scalars(query) if not key.startswith(keeping)]
    if stale:
        session.execute(
            delete(WatermarkRow).where(WatermarkRow.server_base == base, WatermarkRow.resource_type.in_(stale))
        )
    return sorted(stale)


def list_watermarks(session: Session) -> list[Watermark]:
    """Every watermark, per server then resource type: what sync health shows as "last pull"."""
    query = select(WatermarkRow).order_by(WatermarkRow.server_base, WatermarkRow.resource_type)
    return [
        Watermark(
            server_base=r.server_base,
            resource_type=r.resource_type,
            last_updated=r.last_updated,
            updated_at=r.updated_at,
        )
        for r in session.scalars(query)
    ]
