"""Conflicts: a resource both sides changed where the changes clash, left for a person to decide.

The sync layer merges what each side owns and records a conflict only for the clashing fields;
it never silently overwrites a server edit. One open conflict per resource of a case: a later
clash on the same resource updates it rather than piling up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from ._dialect import insert
from ._errors import NotFound
from ._tables import OPEN_CONFLICT, ConflictRow, ConflictStatus
from ._types import utcnow

__all__ = ["ConflictRecord", "Resolution", "add_conflict", "list_conflicts", "resolve_conflict"]


class Resolution(StrEnum):
    """How a person settled a conflict."""

    LOCAL = "local"  # keep the local value, push it
    SERVER = "server"  # take the server's value
    MERGED = "merged"  # a value the person put together


class ConflictRecord(BaseModel):
    """The two values of a resource that clash, and which fields clash."""

    model_config = ConfigDict(frozen=True)

    id: int
    case_id: str
    resource_type: str
    resource_key: str
    local: dict[str, Any] | None
    server: dict[str, Any] | None
    #: The clashing fields as both sides last agreed on them; None where no common version was known.
    base: dict[str, Any] | None = None
    fields: list[str]
    status: ConflictStatus
    resolution: Resolution | None
    resolved_by: str | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None


_COLUMNS = tuple(ConflictRow.__table__.c)


def add_conflict(
    session: Session,
    case_id: str,
    resource_type: str,
    resource_key: str,
    *,
    local: dict[str, Any] | None,
    server: dict[str, Any] | None,
    fields: Sequence[str],
    base: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Record (or refresh the open) conflict on one resource of a case; returns the conflict id."""
    stmt = insert(session, ConflictRow).values(
        case_id=case_id,
        resource_type=resource_type,
        resource_key=resource_key,
        local=local,
        server=server,
        base=base,
        fields=list(fields),
        status=ConflictStatus.OPEN.value,
        created_at=now or utcnow(),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["case_id", "resource_type", "resource_key"],
        index_where=text(OPEN_CONFLICT),
        set_={name: stmt.excluded[name] for name in ("local", "server", "base", "fields")},
    )
    return int(session.execute(stmt.returning(ConflictRow.id)).scalar_one())


def list_conflicts(
    session: Session, *, case_id: str | None = None, status: ConflictStatus | None = ConflictStatus.OPEN
) -> list[ConflictRecord]:
    """Conflicts (open ones unless ``status`` says otherwise; None for all), oldest first."""
    query = select(*_COLUMNS).order_by(ConflictRow.id)
    if case_id is not None:
        query = query.where(ConflictRow.case_id == case_id)
    if status is not None:
        query = query.where(ConflictRow.status == status.value)
    return [ConflictRecord.model_validate(dict(row._mapping)) for row in session.execute(query)]


def resolve_conflict(
    session: Session,
    conflict_id: int,
    resolution: Resolution,
    *,
    resolved_by: str | None = None,
    now: dt.datetime | None = None,
) -> ConflictRecord:
    """Mark an open conflict resolved, saying how and by whom; applying the outcome is the sync layer's job."""
    stmt = (
        update(ConflictRow)
        .where(ConflictRow.id == conflict_id, ConflictRow.status == ConflictStatus.OPEN.value)
        .values(
            status=ConflictStatus.RESOLVED.value,
            resolution=resolution.value,
            resolved_by=resolved_by,
            resolved_at=now or utcnow(),
        )
        .returning(*_COLUMNS)
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        raise NotFound(f"no open conflict {conflict_id}")
    return ConflictRecord.model_validate(dict(row._mapping))
