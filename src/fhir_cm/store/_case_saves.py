"""Saving a case: whole, as the domain model's JSON, its revision one up per change, queued for pushing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from fhir_cm.domain import Case

from ._cases import CaseRecord, stored_record
from ._dialect import insert
from ._errors import StaleRevision
from ._outbox import queue_push as _enqueue
from ._stamps import CASES, note_change
from ._tables import CaseRow
from ._types import connection_of, utcnow
from ._written import carried_as_written

__all__ = ["save_case", "save_case_record"]

_COLUMNS = ("patient_id", "case_manager_id", "programme", "status", "data", "dates_as_written")


def _columns(case: Case) -> dict[str, Any]:
    return {
        "patient_id": case.patient.id,
        # The local practitioner managing the case (caseloads, access): none for an outside manager,
        # another server's record, whose id says nothing of a local practitioner's.
        "case_manager_id": case.case_manager.id if case.case_manager and not case.case_manager.outside else None,
        "programme": case.programme.value,
        "status": case.status.value,
        "data": case.model_dump(mode="json"),
    }


def _locked(session: Session, case_id: str) -> Row[Any] | None:
    # FOR UPDATE serialises writers of one case on PostgreSQL; SQLite writers are already serial.
    return connection_of(session).execute(_LOCKED, {"case_id": case_id}).one_or_none()


# The statements of ``save_case``, built once: building a statement and its cache key cost more than
# running it, and a push saves every case it is given.
_LOCKED = (
    select(CaseRow.revision, CaseRow.data, CaseRow.dates_as_written, CaseRow.created_at, CaseRow.updated_at)
    .where(CaseRow.case_id == bindparam("case_id"))
    .with_for_update()
)
_UPDATE = (
    update(CaseRow)
    .where(CaseRow.case_id == bindparam("b_case_id"))
    .values(
        revision=bindparam("revision"),
        updated_at=bindparam("now"),
        **{name: bindparam(name) for name in _COLUMNS},
    )
)


@cache
def _create_statement(dialect: str) -> Any:
    now = bindparam("now")  # type: ignore[var-annotated]
    stmt = insert(dialect, CaseRow).values(
        case_id=bindparam("case_id"),
        revision=1,
        created_at=now,
        updated_at=now,
        **{name: bindparam(name) for name in _COLUMNS},
    )
    return stmt.on_conflict_do_nothing(index_elements=[CaseRow.case_id]).returning(CaseRow.case_id)


def save_case(
    session: Session,
    case: Case,
    *,
    enqueue: bool = True,
    expected_revision: int | None = None,
    now: dt.datetime | None = None,
    written: Mapping[str, str] | None = None,
) -> int:
    """Insert or update a case and, in the same transaction, queue it for pushing; returns its revision.

    Saving a case equal to the stored one changes nothing and queues nothing. ``expected_revision``
    (0 for "must be new") makes the save fail with ``StaleRevision`` if someone else saved first.

    ``written``: the case's days its stored resources wrote as a year or a month, worked out by a
    writer of those resources (``mapping.dates_as_written`` of this case); without it the stored ones
    are carried along while the days they point at stay as they were (``carried_as_written``). A
    change of those alone raises the revision (readers keep what they show by it) but queues no push:
    the case's content is the same.
    """
    return _save(session, case, enqueue, expected_revision, now, written).revision


def save_case_record(
    session: Session, case: Case, *, expected_revision: int | None = None, now: dt.datetime | None = None
) -> CaseRecord:
    """:func:`save_case`, returning the stored case as a read of it right after would: the case decoded
    from the JSON written, not read back (a change through the API read each case it saved again, one
    statement and the JSON parsed once more)."""
    saved = _save(session, case, True, expected_revision, now, None)
    return stored_record(Case.model_validate(saved.data), saved, dict(saved.written))


class _Saved(NamedTuple):
    """What a save left stored: the revision, the case's JSON, its dates as written and its row's times."""

    revision: int
    data: dict[str, Any]
    written: Mapping[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime


def _save(
    session: Session,
    case: Case,
    enqueue: bool,
    expected_revision: int | None,
    now: dt.datetime | None,
    written: Mapping[str, str] | None,
) -> _Saved:
    now = now or utcnow()
    values = {"case_id": case.id, "now": now, **_columns(case)}
    current = _locked(session, case.id)
    if current is None:
        _expect(case.id, expected_revision, 0)
        values["dates_as_written"] = dict(written or {})
        created = _create_statement(session.get_bind().dialect.name)
        if connection_of(session).execute(created, values).first() is not None:
            note_change(session, CASES, case.id)
            _queued(session, case.id, 1, enqueue, now)
            return _Saved(1, values["data"], values["dates_as_written"], now, now)
        current = _locked(session, case.id)  # another transaction created it just now
        assert current is not None
    _expect(case.id, expected_revision, current.revision)
    held = current.dates_as_written or {}
    values["dates_as_written"] = (
        dict(written) if written is not None else carried_as_written(current.data, values["data"], held)
    )
    changed = current.data != values["data"]
    if not changed and values["dates_as_written"] == held:
        return _Saved(int(current.revision), current.data, held, current.created_at, current.updated_at)
    revision = current.revision + 1
    # The id goes as ``b_case_id`` alone: a parameter named after a column joins the SET clause, and
    # ``case_id`` had set the key to itself on every save.
    changes = {name: value for name, value in values.items() if name != "case_id"}
    connection_of(session).execute(_UPDATE, {**changes, "b_case_id": case.id, "revision": revision})
    note_change(session, CASES, case.id)
    _queued(session, case.id, revision, enqueue and changed, now)
    return _Saved(revision, values["data"], values["dates_as_written"], current.created_at, now)


def _expect(case_id: str, expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise StaleRevision(
            f"case {case_id} is at revision {actual}, not {expected}: reload it and apply the change again"
        )


def _queued(session: Session, case_id: str, revision: int, wanted: bool, now: dt.datetime) -> None:
    if wanted:
        _enqueue(session, case_id, revision, now=now)
