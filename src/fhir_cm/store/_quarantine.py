"""Quarantine: resources a pull or import could not parse or map, kept as received.

A bad resource must neither stop a pull nor vanish: it is set aside here with the reason, for a
person to look at, and the pull carries on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ._tables import QuarantineRow
from ._types import utcnow

__all__ = ["QuarantinedResource", "add_quarantine", "list_quarantine"]

MAX_REASON = 1000


class QuarantinedResource(BaseModel):
    """A resource set aside; ``raw`` is the text as received (it may not even be valid JSON)."""

    model_config = ConfigDict(frozen=True)

    id: int
    source: str
    resource_type: str | None
    server_id: str | None
    reason: str
    raw: str
    received_at: dt.datetime


def add_quarantine(
    session: Session,
    *,
    source: str,
    raw: str | bytes | Mapping[str, Any],
    reason: str,
    resource_type: str | None = None,
    server_id: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Set a resource aside; returns its quarantine id.

    ``source`` is the server base URL or the imported file's name; ``reason`` is read by people
    and must not contain PHI. Type and server id are taken from ``raw`` when it is a mapping.
    """
    if isinstance(raw, Mapping):
        resource_type = resource_type or _str(raw.get("resourceType"))
        server_id = server_id or _str(raw.get("id"))
        text = _json_text(raw)
    else:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    stmt = insert(QuarantineRow).values(
        source=source,
        resource_type=resource_type,
        server_id=server_id,
        reason=reason[:MAX_REASON],
        raw=text,
        received_at=now or utcnow(),
    )
    return int(session.execute(stmt.returning(QuarantineRow.id)).scalar_one())


def _json_text(raw: Mapping[str, Any]) -> str:
    """``raw`` as JSON text; past orjson's nesting limit (254 levels) the standard library's writer
    keeps it, and past Python's, a note of what it was (it is refused for that very reason)."""
    try:
        return orjson.dumps(raw).decode()
    except TypeError:
        try:
            return json.dumps(raw)
        except (RecursionError, TypeError, ValueError):
            return json.dumps({"resourceType": _str(raw.get("resourceType")), "note": "nested too deep to keep"})


def _str(value: object) -> str | None:
    return value[:64] if isinstance(value, str) else None


def list_quarantine(
    session: Session,
    *,
    source: str | None = None,
    resource_type: str | None = None,
    limit: int | None = None,
) -> list[QuarantinedResource]:
    """Quarantined resources, newest first, optionally from one source or of one type."""
    q = QuarantineRow
    query = select(*q.__table__.c).order_by(q.received_at.desc(), q.id.desc()).limit(limit)
    if source is not None:
        query = query.where(q.source == source)
    if resource_type is not None:
        query = query.where(q.resource_type == resource_type)
    return [QuarantinedResource.model_validate(dict(row._mapping)) for row in session.execute(query)]
