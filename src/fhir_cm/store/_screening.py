"""Screening facts and candidates, per server.

Population screening reads a hospital's Encounters, Conditions and screening Observations; what it
keeps of each is one small fact row, keyed by the resource (server, type, id), so the next
incremental read — only what changed since — replaces exactly the facts of the resources that
changed, and the ranking can be run again over everyone without reading the server again. The
candidates of the last ranking are kept with their score and reasons for the supervisor's list and
for enrolment.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Index,
    Integer,
    Select,
    String,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._dialect import insert, normal_base
from ._tables import ID, URL, Base, CaseRow, LedgerRow
from ._types import Json, UTCDateTime, utcnow

__all__ = [
    "CandidateRecord",
    "FactRecord",
    "clashing_patient_ids",
    "count_candidates",
    "drop_facts",
    "ehr_patient_keys",
    "forget_candidates_without_facts",
    "list_candidates",
    "mark_enrolled",
    "open_case_patient_ids",
    "patient_facts_after",
    "patient_facts_of",
    "put_facts",
    "replace_candidates",
]


#: A ranking's scope as kept: ``system``, or ``Group/`` and a Group's id (64 characters at most).
SCOPE = len("Group/") + ID


class ScreeningFactRow(Base):
    """What screening keeps of one resource: whose, what kind, when, which codes, one flag."""

    __tablename__ = "screening_facts"

    server_base: Mapped[str] = mapped_column(String(URL), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(ID), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(16))
    start: Mapped[dt.date | None] = mapped_column(Date)
    end: Mapped[dt.date | None] = mapped_column(Date)
    codes: Mapped[list[str]] = mapped_column(Json)
    flag: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_screening_facts_server_patient", "server_base", "patient_id"),)


class CandidateRow(Base):
    """A patient the last ranking found eligible, with the score and the reasons."""

    __tablename__ = "candidates"

    server_base: Mapped[str] = mapped_column(String(URL), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    assessed_on: Mapped[dt.date] = mapped_column(Date)
    case_id: Mapped[str | None] = mapped_column(String(ID))
    scope: Mapped[str | None] = mapped_column(String(SCOPE))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_candidates_server_score", "server_base", "score"),)


class FactRecord(BaseModel):
    """One fact row, as the ranking reads it back."""

    resource_type: str
    resource_id: str
    patient_id: str
    kind: str
    start: dt.date | None = None
    end: dt.date | None = None
    codes: list[str] = Field(default_factory=list)
    flag: bool = False


class CandidateRecord(BaseModel):
    """A candidate as the supervisor's list shows it."""

    server_base: str
    patient_id: str
    score: int
    reasons: list[dict[str, Any]]
    assessed_on: dt.date
    case_id: str | None = Field(default=None, description="The case enrolment made of this candidate, if any.")
    scope: str | None = Field(
        default=None,
        description="The ranking that made this row: 'system' (the server's whole population) or "
        "'Group/<id>' (a Group's run, its members only); none for rows ranked before scopes were kept.",
    )


def put_facts(
    session: Session, server_base: str, facts: Sequence[FactRecord], *, now: dt.datetime | None = None
) -> None:
    """Insert or replace the facts of these resources (a later read of a resource replaces its fact)."""
    if not facts:
        return
    at, base = now or utcnow(), normal_base(server_base)
    rows = {(f.resource_type, f.resource_id): {**f.model_dump(), "server_base": base, "updated_at": at} for f in facts}
    stmt = insert(session, ScreeningFactRow).values(list(rows.values()))
    replaced = {c: stmt.excluded[c] for c in ("patient_id", "kind", "start", "end", "codes", "flag", "updated_at")}
    session.execute(
        stmt.on_conflict_do_update(index_elements=["server_base", "resource_type", "resource_id"], set_=replaced)
    )


def drop_facts(session: Session, server_base: str, keys: Iterable[tuple[str, str]]) -> None:
    """Forget the facts of these resources (type, id): read again, they no longer tell screening
    anything — a visit cancelled, a diagnosis resolved or refuted — so their old fact must not count."""
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    base = normal_base(server_base)
    for rtype, ids in by_type.items():
        session.execute(
            delete(ScreeningFactRow).where(
                ScreeningFactRow.server_base == base,
                ScreeningFactRow.resource_type == rtype,
                ScreeningFactRow.resource_id.in_(ids),
            )
        )


def patient_facts_after(
    session: Session, server_base: str, after: str | None, limit: int
) -> list[tuple[str, list[FactRecord]]]:
    """The next ``limit`` patients (by id, after ``after``) with all their facts: the ranking walks the
    population in such slices, so memory holds one slice whatever the population."""
    base = normal_base(server_base)
    ids = select(ScreeningFactRow.patient_id).where(ScreeningFactRow.server_base == base)
    if after is not None:
        ids = ids.where(ScreeningFactRow.patient_id > after)
    patients = list(session.execute(ids.distinct().order_by(ScreeningFactRow.patient_id).limit(limit)).scalars())
    return patient_facts_of(session, server_base, patients)


def patient_facts_of(session: Session, server_base: str, patients: Sequence[str]) -> list[tuple[str, list[FactRecord]]]:
    """These patients with all their facts, in the order given — a patient of whom the store holds no
    fact with none (a Group's member the screening read nothing of is ranked, and is no candidate)."""
    if not patients:
        return []
    base = normal_base(server_base)
    columns = [getattr(ScreeningFactRow, c) for c in FactRecord.model_fields]
    query = (
        select(*columns)
        .where(ScreeningFactRow.server_base == base, ScreeningFactRow.patient_id.in_(patients))
        .order_by(ScreeningFactRow.patient_id)
    )
    by_patient: dict[str, list[FactRecord]] = {p: [] for p in patients}
    for row in session.execute(query):
        by_patient[row.patient_id].append(FactRecord.model_validate(row._asdict()))
    return list(by_patient.items())


#: The statuses of an open case, as stored.
_OPEN = ("referred", "waitlist", "active", "on-hold")


def open_case_patient_ids(
    session: Session, patient_ids: Iterable[str], *, server_base: str | Sequence[str] | None = None
) -> set[str]:
    """Which of these patients (ids of the server ``server_base``) are in an open case (any programme).

    The ids are matched as ``ehr_patient_keys`` says: a case whose patient the server knows under an
    id of its own (a push created the Patient there) is found through the ledger, and a case whose
    patient a push gave another id there is *not* found by its own id, which on that server may be
    another person's.
    """
    keys = ehr_patient_keys(session, _servers(server_base), patient_ids)
    if not keys:
        return set()
    query = select(CaseRow.patient_id).where(CaseRow.status.in_(_OPEN), CaseRow.patient_id.in_(list(keys)))
    return {keys[ours] for ours in session.execute(query).scalars()}


def ehr_patient_keys(session: Session, server_bases: Sequence[str], server_ids: Iterable[str]) -> dict[str, str]:
    """The patient id of our cases each of these ids of a server's Patients stands for (``{ours: theirs}``).

    A case's patient id is the EHR's when the case came from there (a CDS referral, enrolment from
    screening, an import), so an id stands for itself; but once a push to one of ``server_bases``
    found no Patient of that id and created one, the server knows that patient by the id it chose
    (the ledger's ``server_id``), and our id, which the server did not hold then, may since name
    someone else there: it stands only for the server id, and the same id coming from the server is
    not ours. A Patient the push found under our id (the ledger's ``server_id`` equal to its key)
    stands for itself; an id the server gave a Patient we pushed stands for that patient alone. The
    ledgers of other servers say nothing of these ids and are not read.
    """
    wanted = list(dict.fromkeys(server_ids))
    mapped, renamed = _pushed_patients(session, server_bases, wanted)
    taken = set(mapped.values()) | renamed
    return {**{i: i for i in wanted if i not in taken}, **mapped}


def clashing_patient_ids(session: Session, server_bases: Sequence[str], server_ids: Iterable[str]) -> set[str]:
    """Which of these ids of a server's Patients are our ids of patients a push gave another id
    there, and no Patient we pushed: on that server they name someone else, whom a case made under
    the id would merge with our patient of that id (and a push would give that patient's Patient)."""
    wanted = list(dict.fromkeys(server_ids))
    mapped, renamed = _pushed_patients(session, server_bases, wanted)
    return {i for i in wanted if i in renamed} - set(mapped.values())


def _pushed_patients(
    session: Session, server_bases: Sequence[str], wanted: list[str]
) -> tuple[dict[str, str], set[str]]:
    """From the Patient entries of these servers' ledgers: ``{ours: theirs}`` for each wanted id a
    server gave a patient of ours (or kept as ours), and our ids a server knows by another."""
    mapped: dict[str, str] = {}
    renamed: set[str] = set()
    if not wanted:
        return mapped, renamed
    for base in dict.fromkeys(normal_base(b) for b in server_bases):
        known = select(LedgerRow.key, LedgerRow.server_id).where(
            LedgerRow.server_base == base,
            LedgerRow.resource_type == "Patient",
            or_(LedgerRow.server_id.in_(wanted), LedgerRow.key.in_(wanted)),
        )
        for key, server_id in session.execute(known):
            if server_id in wanted:
                mapped.setdefault(key, server_id)
            if server_id and server_id != key:
                renamed.add(key)
    return mapped, renamed


def _servers(server_base: str | Sequence[str] | None) -> Sequence[str]:
    if server_base is None:
        return ()
    return (server_base,) if isinstance(server_base, str) else server_base


def replace_candidates(
    session: Session,
    server_base: str,
    patient_ids: Sequence[str],
    eligible: Sequence[CandidateRecord],
    *,
    now: dt.datetime | None = None,
) -> None:
    """Set the candidates among ``patient_ids`` (one slice of the ranking) to exactly ``eligible``."""
    base, at = normal_base(server_base), now or utcnow()
    session.execute(
        delete(CandidateRow).where(CandidateRow.server_base == base, CandidateRow.patient_id.in_(list(patient_ids)))
    )
    if eligible:
        rows = [{**c.model_dump(), "server_base": base, "updated_at": at} for c in eligible]
        session.execute(insert(session, CandidateRow).values(rows))


def forget_candidates_without_facts(session: Session, server_base: str) -> None:
    """Drop the candidates of patients the store holds no fact of any more (each of their resources
    deleted, or read again telling screening nothing): the ranking walks the patients of the facts, so
    it would never come to them, and they would stay listed for reasons that are gone."""
    base = normal_base(server_base)
    facts = select(ScreeningFactRow.patient_id).where(
        ScreeningFactRow.server_base == base, ScreeningFactRow.patient_id == CandidateRow.patient_id
    )
    session.execute(
        delete(CandidateRow).where(CandidateRow.server_base == base, ~facts.exists()),
        execution_options={"synchronize_session": False},
    )


def list_candidates(
    session: Session,
    server_base: str | None = None,
    *,
    limit: int = 50,
    offset: int = 0,
    min_score: int = 0,
    free_only: bool = False,
    among: Collection[str] | None = None,
) -> list[CandidateRecord]:
    """Candidates by score (highest first), then patient id: a stable order for paging.

    ``free_only``: only those in no open case now (see :func:`_in_open_case`), for a list that
    offers candidates to enrol and for enrolment's top N. ``among``: only these patients (a Group's
    members), however many: they are read a slice at a time."""
    if among is not None:
        return _among(session, server_base, sorted(set(among)), limit, offset, min_score, free_only)
    query = _candidates(select(CandidateRow), server_base, min_score, free_only)
    query = query.order_by(CandidateRow.score.desc(), CandidateRow.patient_id).limit(limit).offset(offset)
    return [_record(row) for row in session.execute(query).scalars()]


def _among(
    session: Session,
    server_base: str | None,
    patients: list[str],
    limit: int,
    offset: int,
    min_score: int,
    free_only: bool,
) -> list[CandidateRecord]:
    """The page of :func:`list_candidates` among ``patients``, asked ``_AMONG_SLICE`` ids a query
    (databases bound the parameters of one statement), the best ``offset + limit`` of each kept."""
    best: list[CandidateRecord] = []
    for start in range(0, len(patients), _AMONG_SLICE):
        query = _candidates(select(CandidateRow), server_base, min_score, free_only)
        query = query.where(CandidateRow.patient_id.in_(patients[start : start + _AMONG_SLICE]))
        query = query.order_by(CandidateRow.score.desc(), CandidateRow.patient_id).limit(offset + limit)
        best += [_record(row) for row in session.execute(query).scalars()]
        best = sorted(best, key=lambda c: (-c.score, c.patient_id))[: offset + limit]
    return best[offset:]


#: Patient ids per query of a list among them (SQLite's and PostgreSQL's bounds are far above).
_AMONG_SLICE = 1000


def count_candidates(
    session: Session, server_base: str | None = None, *, min_score: int = 0, free_only: bool = False
) -> int:
    """How many candidates :func:`list_candidates` pages through with the same filters."""
    query = _candidates(select(func.count()).select_from(CandidateRow), server_base, min_score, free_only)
    return int(session.execute(query).scalar_one())


def _candidates(query: Select[Any], server_base: str | None, min_score: int, free_only: bool) -> Select[Any]:
    query = query.where(CandidateRow.score >= min_score)
    if server_base is not None:
        query = query.where(CandidateRow.server_base == normal_base(server_base))
    return query.where(~_in_open_case()) if free_only else query


def _in_open_case() -> ColumnElement[bool]:
    """A candidate row's patient is in an open case now (any programme): :func:`open_case_patient_ids`
    as one SQL condition, so a filtered list pages and counts in the database.

    A candidate joins a case after the ranking that proposed them (made by hand, pulled from the
    hospital, enrolled); until the next ranking drops them, the list would still offer them and
    enrolling them be refused. The candidate's id is the server's, matched as ``ehr_patient_keys``
    says: the patient a push gave that id on the candidate's server (through the ledger), or our
    patient of that id unless the server knows that patient by another id, or holds under it a
    Patient we pushed for someone else.
    """
    open_case = CaseRow.status.in_(_OPEN)
    patients = (LedgerRow.server_base == CandidateRow.server_base, LedgerRow.resource_type == "Patient")
    pushed = (
        select(LedgerRow.key)
        .join(CaseRow, CaseRow.patient_id == LedgerRow.key)
        .where(*patients, LedgerRow.server_id == CandidateRow.patient_id, open_case)
    )
    own = select(CaseRow.case_id).where(CaseRow.patient_id == CandidateRow.patient_id, open_case)
    elsewhere = select(LedgerRow.key).where(
        *patients,
        or_(
            and_(LedgerRow.server_id == CandidateRow.patient_id, LedgerRow.key != CandidateRow.patient_id),
            and_(
                LedgerRow.key == CandidateRow.patient_id,
                LedgerRow.server_id != "",
                LedgerRow.server_id != CandidateRow.patient_id,
            ),
        ),
    )
    return or_(pushed.exists(), and_(own.exists(), ~elsewhere.exists()))


def mark_enrolled(session: Session, server_base: str, patient_id: str, case_id: str) -> None:
    """Record the case a candidate became (the next ranking drops them: they are in an open case)."""
    session.execute(
        update(CandidateRow)
        .where(CandidateRow.server_base == normal_base(server_base), CandidateRow.patient_id == patient_id)
        .values(case_id=case_id, updated_at=utcnow())
    )


def _record(row: CandidateRow) -> CandidateRecord:
    return CandidateRecord(
        server_base=row.server_base,
        patient_id=row.patient_id,
        score=row.score,
        reasons=row.reasons,
        assessed_on=row.assessed_on,
        case_id=row.case_id,
        scope=row.scope,
    )
