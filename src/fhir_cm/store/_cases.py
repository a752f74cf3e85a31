"""Cases: saved whole as the domain model's JSON, with a revision that goes up by one per change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from fhir_cm.domain import Case, CaseStatus, ProgrammeType

from ._dialect import insert
from ._errors import StaleRevision
from ._outbox import queue_push as _enqueue
from ._tables import CaseRow
from ._types import utcnow

__all__ = ["CaseRecord", "get_case", "get_case_record", "get_case_records", "list_cases", "save_case"]


class CaseRecord(BaseModel):
    """A stored case with its bookkeeping: the revision is what optimistic updates (ETags) compare."""

    model_config = ConfigDict(frozen=True)

    case: Case
    revision: int
    created_at: dt.datetime
    updated_at: dt.datetime


def _columns(case: Case) -> dict[str, Any]:
    return {
        "patient_id": case.patient.id,
        "case_manager_id": case.case_manager.id if case.case_manager else None,
        "programme": case.programme.value,
        "status": case.status.value,
        "data": case.model_dump(mode="json"),
    }


def _locked(session: Session, case_id: str) -> Row[tuple[int, dict[str, Any]]] | None:
    # FOR UPDATE serialises writers of one case on PostgreSQL; SQLite writers are already serial.
    query = select(CaseRow.revision, CaseRow.data).where(CaseRow.case_id == case_id).with_for_update()
    return session.execute(query).one_or_none()


def save_case(
    session: Session,
    case: Case,
    *,
    enqueue: bool = True,
    expected_revision: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Insert or update a case and, in the same transaction, queue it for pushing; returns its revision.

    Saving a case equal to the stored one changes nothing and queues nothing. ``expected_revision``
    (0 for "must be new") makes the save fail with ``StaleRevision`` if someone else saved first.
    """
    now = now or utcnow()
    columns = _columns(case)
    current = _locked(session, case.id)
    if current is None:
        _expect(case.id, expected_revision, 0)
        stmt = insert(session, CaseRow).values(case_id=case.id, revision=1, created_at=now, updated_at=now, **columns)
        created = stmt.on_conflict_do_nothing(index_elements=[CaseRow.case_id]).returning(CaseRow.case_id)
        if session.execute(created).first() is not None:
            revision = 1
            return _queued(session, case.id, revision, enqueue, now)
        current = _locked(session, case.id)  # another transaction created it just now
        assert current is not None
    _expect(case.id, expected_revision, current.revision)
    if current.data == columns["data"]:
        return int(current.revision)
    revision = current.revision + 1
    session.execute(
        update(CaseRow).where(CaseRow.case_id == case.id).values(revision=revision, updated_at=now, **columns)
    )
    return _queued(session, case.id, revision, enqueue, now)


def _expect(case_id: str, expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise StaleRevision(
            f"case {case_id} is at revision {actual}, not {expected}: reload it and apply the change again"
        )


def _queued(session: Session, case_id: str, revision: int, wanted: bool, now: dt.datetime) -> int:
    if wanted:
        _enqueue(session, case_id, revision, now=now)
    return revision


def get_case_record(session: Session, case_id: str) -> CaseRecord | None:
    """The stored case with its revision and times, or None."""
    # Rows, not ORM objects, throughout the store: statements update tables directly, and an
    # object cached in the session would not see those changes.
    row = session.execute(_RECORD.where(CaseRow.case_id == case_id)).one_or_none()
    return None if row is None else _record(row)


def get_case_records(session: Session, case_ids: Iterable[str]) -> dict[str, CaseRecord]:
    """The stored cases among ``case_ids``, by id, in one query (those not stored are left out)."""
    wanted = list(dict.fromkeys(case_ids))
    if not wanted:
        return {}
    rows = session.execute(_RECORD.add_columns(CaseRow.case_id).where(CaseRow.case_id.in_(wanted)))
    return {row.case_id: _record(row) for row in rows}


_RECORD = select(CaseRow.data, CaseRow.revision, CaseRow.created_at, CaseRow.updated_at)


def _record(row: Any) -> CaseRecord:
    return CaseRecord(
        case=Case.model_validate(row.data), revision=row.revision, created_at=row.created_at, updated_at=row.updated_at
    )


def get_case(session: Session, case_id: str) -> Case | None:
    """The stored case, or None."""
    data = session.execute(select(CaseRow.data).where(CaseRow.case_id == case_id)).scalar_one_or_none()
    return None if data is None else Case.model_validate(data)


def list_cases(
    session: Session,
    *,
    status: CaseStatus | Iterable[CaseStatus] | None = None,
    case_manager: str | None = None,
    programme: ProgrammeType | None = None,
    patient: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Case]:
    """Cases matching every filter given, ordered by id. ``status`` may be several (e.g. the open ones)."""
    query = select(CaseRow.data).order_by(CaseRow.case_id).offset(offset).limit(limit)
    if status is not None:
        statuses = [status] if isinstance(status, CaseStatus) else list(status)
        query = query.where(CaseRow.status.in_([s.value for s in statuses]))
    if case_manager is not None:
        query = query.where(CaseRow.case_manager_id == case_manager)
    if programme is not None:
        query = query.where(CaseRow.programme == programme.value)
    if patient is not None:
        query = query.where(CaseRow.patient_id == patient)
    return [Case.model_validate(data) for data in session.execute(query).scalars()]
