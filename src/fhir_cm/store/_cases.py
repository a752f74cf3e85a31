"""Cases as stored: read one, a page or every one, through the process's case cache; their revisions.

Saving a case is ``_case_saves``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypedDict

from typing_extensions import Unpack

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy.orm import Session

from fhir_cm.domain import Case, CaseStatus, ProgrammeType

from ._case_cache import CaseCache
from ._errors import UnreadableCase
from ._tables import CaseRow
from ._types import Reader, connection_of

__all__ = [
    "CaseFilters",
    "CaseRecord",
    "case_revisions",
    "cases_of_patients_with_several",
    "get_case",
    "get_case_record",
    "get_case_records",
    "keep_case_record",
    "list_case_records",
    "list_cases",
    "stored_case_data",
]

log = logging.getLogger(__name__)

#: Case ids per ``IN (...)``: a list of every case (a case manager's, cold cache) must stay under the
#: drivers' limit on bound parameters (65,535 for PostgreSQL, 32,766 for a stock SQLite).
_CHUNK = 500


class CaseRecord(BaseModel):
    """A stored case with its bookkeeping: the revision is what optimistic updates (ETags) compare."""

    model_config = ConfigDict(frozen=True)

    case: Case
    revision: int
    created_at: dt.datetime
    updated_at: dt.datetime
    dates_as_written: dict[str, str] = Field(
        default_factory=dict,
        description="The case's days its stored resources wrote as a year or a month: JSON pointer into "
        "the case → the date as written (see ``_written``).",
    )


def get_case_record(session: Reader, case_id: str, *, cache: CaseCache | None = None) -> CaseRecord | None:
    """The stored case with its revision and times, or None; ``UnreadableCase`` if this version cannot
    read it.

    With ``cache``, a case kept at its current revision is not decoded again (see ``CaseCache``): for
    readers only, since the case returned may be shared.
    """
    # Rows, not ORM objects, throughout the store: statements update tables directly, and an
    # object cached in the session would not see those changes.
    if cache is not None:
        found = _through_cache(session, _HEAD.where(CaseRow.case_id == case_id), cache)
        return found[0] if found else None
    row = connection_of(session).execute(_RECORD.where(CaseRow.case_id == case_id)).one_or_none()
    return None if row is None else _record(row)


def get_case_records(
    session: Session,
    case_ids: Iterable[str],
    *,
    skipped: list[UnreadableCase] | None = None,
    cache: CaseCache | None = None,
    revisions: Mapping[str, int] | None = None,
) -> dict[str, CaseRecord]:
    """The stored cases among ``case_ids``, by id (those not stored are left out).

    A case this version cannot read raises ``UnreadableCase``; with ``skipped`` it is left out and
    appended there instead (and logged by id), for readers that can do without it (see ``_record``).
    With ``cache``, as :func:`get_case_record` uses it: a reader going through every case (the API's
    parts of a new day) decodes only those the cache does not hold at their revision. With
    ``revisions`` too — every one of ``case_ids``'s, as this session read them a statement before (a
    view's catch-up, a façade's stamps) — a case kept at its revision is not asked for at all: its
    revision was looked up once already, and each view of a serving process looked it up again.
    """
    wanted = list(dict.fromkeys(case_ids))
    if cache is not None and revisions is not None:
        return _at_revisions(session, wanted, revisions, cache, skipped)
    if cache is not None:
        return {
            record.case.id: record
            for n in range(0, len(wanted), _CHUNK)
            for record in _through_cache(
                session, _HEAD.where(CaseRow.case_id.in_(wanted[n : n + _CHUNK])), cache, skipped
            )
        }
    return {row.case_id: record for row in _rows_of(session, wanted) if (record := _record(row, skipped)) is not None}


def _rows_of(session: Reader, case_ids: list[str]) -> Iterator[Row[Any]]:
    """The stored rows (``_RECORD``) of these cases, read ``_CHUNK`` ids at a time."""
    for n in range(0, len(case_ids), _CHUNK):
        yield from connection_of(session).execute(_RECORD.where(CaseRow.case_id.in_(case_ids[n : n + _CHUNK])))


_RECORD = select(
    CaseRow.case_id,
    CaseRow.data,
    CaseRow.revision,
    CaseRow.created_at,
    CaseRow.updated_at,
    CaseRow.programme,
    CaseRow.case_manager_id,
    CaseRow.dates_as_written,
)
_HEAD = select(CaseRow.case_id, CaseRow.revision, CaseRow.created_at, CaseRow.updated_at)


def _through_cache(
    session: Reader,
    heads: Select[str, int, dt.datetime, dt.datetime],
    cache: CaseCache,
    skipped: list[UnreadableCase] | None = None,
) -> list[CaseRecord]:
    """The cases ``heads`` selects, in its order: kept ones from ``cache``, the others read from the table.

    A case saved between the two queries is returned as read by the second (its data and revision
    agree), and kept under that revision.
    """
    rows = connection_of(session).execute(heads).all()
    kept = {row.case_id: held for row in rows if (held := cache.get_kept(row.case_id, row.revision)) is not None}
    # Each record gets its own copy of the kept map of dates as written: a reader may change its own.
    records = {
        row.case_id: stored_record(held.case, row, dict(held.written))
        for row in rows
        if (held := kept.get(row.case_id)) is not None
    }
    missing = [row.case_id for row in rows if row.case_id not in kept]
    for row in _rows_of(session, missing):
        if (record := _record(row, skipped)) is not None:
            records[row.case_id] = record
            keep_case_record(cache, record)
    return [records[row.case_id] for row in rows if row.case_id in records]


def _at_revisions(
    session: Session,
    case_ids: list[str],
    revisions: Mapping[str, int],
    cache: CaseCache,
    skipped: list[UnreadableCase] | None,
) -> dict[str, CaseRecord]:
    """``get_case_records`` of cases whose revisions the caller read: those kept at that revision (with
    their times) from ``cache``, the others read whole and kept."""
    records: dict[str, CaseRecord] = {}
    missing = []
    for case_id in case_ids:
        held = cache.get_kept(case_id, revisions[case_id])
        if held is None or held.created_at is None or held.updated_at is None:
            missing.append(case_id)
            continue
        records[case_id] = stored_record(
            held.case, _Head(revisions[case_id], held.created_at, held.updated_at), dict(held.written)
        )
    for row in _rows_of(session, missing):
        if (record := _record(row, skipped)) is not None:
            records[row.case_id] = record
            keep_case_record(cache, record)
    return records


def keep_case_record(cache: CaseCache, record: CaseRecord) -> None:
    """Keep ``record`` in ``cache`` with its times, so that a reader knowing its revision needs no query."""
    cache.put(
        record.case.id,
        record.revision,
        record.case,
        record.dates_as_written,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _record(row: Any, skipped: list[UnreadableCase] | None = None) -> CaseRecord | None:
    """The row's case, decoded; one this version cannot read raises ``UnreadableCase`` or, with
    ``skipped``, is logged by id (no values), appended there and None returned.

    A list leaves such a case out rather than failing whole (one old row must not take a caseload, the
    FHIR facade or a push of everything down), and says so; a read of that very case, or a change to
    it, gets the error: nothing is written over a case that could not be read."""
    try:
        case = _decode(row)
    except UnreadableCase as exc:
        if skipped is None:
            raise
        log.warning("stored case %s cannot be read by this version and is left out; see `fhir-cm check`", row.case_id)
        skipped.append(exc)
        return None
    return stored_record(case, row, row.dates_as_written or {})


class _Head(NamedTuple):
    """A case's revision and row times, as ``_HEAD`` reads them (here known without reading them)."""

    revision: int
    created_at: dt.datetime
    updated_at: dt.datetime


def stored_record(case: Case, row: Any, written: dict[str, str]) -> CaseRecord:
    """The record of a case read (or kept) and its row's bookkeeping, built without validating it again:
    the case is a validated ``Case``, the rest the table's typed columns. Validating the record ran the
    case's own model validator once more (pydantic runs a model's after-validators on an instance passed
    in as well), about 30 µs a case: a page of cases listed, or a view going through every case, paid it
    for each, though nothing in the case was new."""
    return CaseRecord.model_construct(
        case=case,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        dates_as_written=written,
    )


def _decode(row: Any) -> Case:
    try:
        return Case.model_validate(row.data)
    except ValidationError as exc:
        # ``from None``: the validation error quotes the stored values (names, notes), and a traceback
        # of this error may reach a log.
        fields = [".".join(str(p) for p in e["loc"]) for e in exc.errors(include_input=False, include_url=False)]
        raise UnreadableCase(
            row.case_id,
            list(dict.fromkeys(fields))[:3],
            programme=row.programme,
            case_manager_id=row.case_manager_id,
        ) from None


def get_case(session: Session, case_id: str) -> Case | None:
    """The stored case, or None; ``UnreadableCase`` if this version cannot read it."""
    row = connection_of(session).execute(_RECORD.where(CaseRow.case_id == case_id)).one_or_none()
    return None if row is None else _decode(row)


class CaseFilters(TypedDict, total=False):
    """What the case readers select by: every filter given must match. ``status`` may be several
    (e.g. the open ones)."""

    status: CaseStatus | Iterable[CaseStatus] | None
    case_manager: str | None
    programme: ProgrammeType | None
    patient: str | None
    ids: Iterable[str] | None


def list_cases(
    session: Session,
    *,
    limit: int | None = None,
    offset: int = 0,
    skipped: list[UnreadableCase] | None = None,
    **filters: Unpack[CaseFilters],
) -> list[Case]:
    """Cases matching every filter given, ordered by id (``skipped`` as for ``get_case_records``)."""
    records = list_case_records(session, limit=limit, offset=offset, skipped=skipped, **filters)
    return [record.case for record in records]


def stored_case_data(
    session: Session, *, limit: int | None = None, offset: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """Each case's id and JSON as stored, undecoded, ordered by id: for ``fhir-cm check``, which must
    list a case this version's model no longer accepts (stored before a rule of it) rather than stop."""
    query = select(CaseRow.case_id, CaseRow.data).order_by(CaseRow.case_id).offset(offset).limit(limit)
    return [(row.case_id, row.data) for row in connection_of(session).execute(query)]


def list_case_records(
    session: Session,
    *,
    limit: int | None = None,
    offset: int = 0,
    cache: CaseCache | None = None,
    skipped: list[UnreadableCase] | None = None,
    **filters: Unpack[CaseFilters],
) -> list[CaseRecord]:
    """Cases matching every filter given, ordered by id, with their revisions and times. With
    ``cache``, as :func:`get_case_record` uses it (kept cases are not decoded again); ``skipped`` as
    for :func:`get_case_records` (a page then holds fewer cases than ``limit``)."""
    where = _filters(filters)
    if cache is not None:
        heads = _HEAD.where(*where).order_by(CaseRow.case_id).offset(offset).limit(limit)
        return _through_cache(session, heads, cache, skipped)
    query = _RECORD.where(*where).order_by(CaseRow.case_id).offset(offset).limit(limit)
    return [record for row in connection_of(session).execute(query) if (record := _record(row, skipped)) is not None]


def case_revisions(session: Session, **filters: Unpack[CaseFilters]) -> dict[str, int]:
    """The revision of every case matching the filters, by id in id order: one narrow query, no JSON
    (readers that keep something per case find here which cases changed since)."""
    query = select(CaseRow.case_id, CaseRow.revision).where(*_filters(filters))
    return dict(connection_of(session).execute(query.order_by(CaseRow.case_id)).all())


def cases_of_patients_with_several(
    session: Session,
    patients: Iterable[str],
    *,
    cache: CaseCache | None = None,
    skipped: list[UnreadableCase] | None = None,
) -> list[CaseRecord]:
    """Every case of those of ``patients`` who have more than one case, any programme (``cache`` and
    ``skipped`` as for :func:`list_case_records`): where a discharge of one case may have been readmitted
    into another. Counted on the indexed patient column first, so a patient with one case reads nothing."""
    wanted = sorted(set(patients))
    with_several = select(CaseRow.patient_id).group_by(CaseRow.patient_id).having(func.count() > 1)
    several: list[str] = []
    if len(wanted) > _CHUNK:
        # Many patients (the outcomes of a programme over a year: thousands, asked after every change):
        # the patients with several cases of the whole table, on the index alone, then those wanted —
        # 10 ms on 10,000 cases where 5,000 patients asked 500 at a time took 55 ms (a probe).
        asked = set(wanted)
        several = sorted(p for p in connection_of(session).scalars(with_several) if p in asked)
    else:
        several += connection_of(session).scalars(with_several.where(CaseRow.patient_id.in_(wanted)))
    records: list[CaseRecord] = []
    for n in range(0, len(several), _CHUNK):
        theirs = CaseRow.patient_id.in_(several[n : n + _CHUNK])
        if cache is not None:
            records += _through_cache(session, _HEAD.where(theirs).order_by(CaseRow.case_id), cache, skipped)
        else:
            query = _RECORD.where(theirs).order_by(CaseRow.case_id)
            records += [
                record for row in connection_of(session).execute(query) if (record := _record(row, skipped)) is not None
            ]
    return records


def warm_case_cache(
    session: Session, cache: CaseCache, statuses: Iterable[CaseStatus], *, stop: threading.Event | None = None
) -> int:
    """Decode the cases of these statuses into ``cache``, most recently saved first, as many as it has
    room for (a server's start-up: the first reads then find them); returns how many. A case this
    version cannot read is left out (logged by id). ``stop`` set (the server shutting down), it
    stops after the case under way."""
    room = cache.size - len(cache)
    if room <= 0:
        return 0
    query = (
        _RECORD.where(CaseRow.status.in_([s.value for s in statuses])).order_by(CaseRow.updated_at.desc()).limit(room)
    )
    warmed = 0
    for row in connection_of(session).execute(query):
        if stop is not None and stop.is_set():
            break
        if (record := _record(row, [])) is not None:
            keep_case_record(cache, record)
            warmed += 1
    return warmed


def _filters(given: CaseFilters) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    status = given.get("status")
    if status is not None:
        statuses = [status] if isinstance(status, CaseStatus) else list(status)
        filters.append(CaseRow.status.in_([s.value for s in statuses]))
    if (case_manager := given.get("case_manager")) is not None:
        filters.append(CaseRow.case_manager_id == case_manager)
    if (programme := given.get("programme")) is not None:
        filters.append(CaseRow.programme == programme.value)
    if (patient := given.get("patient")) is not None:
        filters.append(CaseRow.patient_id == patient)
    if (ids := given.get("ids")) is not None:
        filters.append(CaseRow.case_id.in_(list(ids)))
    return filters
