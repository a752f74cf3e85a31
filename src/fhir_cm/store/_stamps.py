"""What changed since last time, cheaply: a stamp per case without decoding any JSON.

Readers that keep derived views of cases (the FHIR façade's search index) compare stamps to find the
few cases they must rebuild, instead of mapping every case on every request.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ._tables import CaseRow, ResourceRow

__all__ = ["CaseStamp", "case_stamps", "cases_version", "resources_saved_at", "store_version"]


class CaseStamp(NamedTuple):
    """A case's revision and save time, and the newest time and number of its stored resources."""

    revision: int
    updated_at: dt.datetime
    resources_at: dt.datetime | None
    resources: int


def case_stamps(session: Session) -> dict[str, CaseStamp]:
    """Every case's stamp, in one query over the cases and resources tables."""
    stored = (
        select(ResourceRow.case_id, func.max(ResourceRow.updated_at).label("at"), func.count().label("n"))
        .group_by(ResourceRow.case_id)
        .subquery()
    )
    query = select(CaseRow.case_id, CaseRow.revision, CaseRow.updated_at, stored.c.at, stored.c.n).outerjoin(
        stored, stored.c.case_id == CaseRow.case_id
    )
    return {row[0]: CaseStamp(row[1], row[2], row[3], row[4] or 0) for row in session.execute(query)}


def cases_version(session: Session) -> tuple[int, int]:
    """A value that changes whenever any case is created, saved or removed: the number of cases and the
    sum of their revisions (every save raises its case's revision). One scan of two small columns, for
    readers that keep results computed over every case (caseload, outcomes) until a case changes."""
    count, total = session.execute(select(func.count(), func.coalesce(func.sum(CaseRow.revision), 0))).one()
    return int(count), int(total)


def resources_saved_at(session: Session) -> dt.datetime | None:
    """When a stored resource was last saved (None: none is): one lookup in an index. A pull stores a
    server's copy even when the case it reads into stays the same (a due day written "2025-09" that
    was "2025-09-30"), so what a reader derives from the copies is fresh only while this is unchanged."""
    saved: dt.datetime | None = session.execute(select(func.max(ResourceRow.updated_at))).scalar_one()
    return saved


def store_version(session: Session) -> tuple[int, int, int, dt.datetime | None]:
    """:func:`cases_version` and the number and newest save time of the stored resources: when it is
    unchanged, so is every case's :class:`CaseStamp` (a reader may skip reading them all)."""
    count, newest = session.execute(select(func.count(), func.max(ResourceRow.updated_at))).one()
    return (*cases_version(session), int(count), newest)
