"""Transitions between care settings as recorded by the tracker, one per (case, from stay, to stay, date).

Transitions are derived from stays (``fhir_cm.domain.derive_transitions``); recording them keeps
what the tracker has seen and acted on (the source Encounter, the follow-up it asked for), so a
second run of the tracker knows which moves are new.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fhir_cm.domain import Transition, with_dates_as_written

from ._cases import CaseRecord, get_case_record, list_case_records
from ._errors import UnreadableCase
from ._dialect import insert
from ._tables import TransitionRow
from ._types import utcnow

__all__ = [
    "RecordedTransition",
    "case_transitions",
    "list_transitions",
    "record_transitions",
    "transitions_as_written",
]

log = logging.getLogger(__name__)


class RecordedTransition(Transition):
    """A transition as recorded for a case: which Encounter showed it, and when it was first seen."""

    case_id: str
    source_encounter: str | None = None
    recorded_at: dt.datetime | None = Field(
        default=None, description="When the tracker first saw it; None if not recorded yet."
    )


_KEY = ("case_id", "from_stay", "to_stay", "date")


def _values(case_id: str, t: Transition, source_encounter: str | None) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "from_stay": t.from_stay or "",
        "to_stay": t.to_stay or "",
        "date": t.date,
        "from_setting": t.from_setting.value,
        "to_setting": t.to_setting.value,
        "discharge_disposition": t.discharge_disposition.value if t.discharge_disposition else None,
        "receiving_provider": t.receiving_provider.model_dump(mode="json") if t.receiving_provider else None,
        "source_encounter": source_encounter,
        "readmission": t.readmission,
        "follow_up_due": t.follow_up_due,
    }


def record_transitions(
    session: Session,
    case_id: str,
    transitions: Iterable[Transition],
    *,
    source_encounters: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> list[RecordedTransition]:
    """Record a case's transitions; returns those seen for the first time (recording again is harmless).

    A transition already recorded is updated in place (a follow-up date or readmission flag may
    only be known later) and keeps its first ``recorded_at``; so is one between the same stays
    recorded on a day they no longer show (the hospital corrected a date). ``source_encounters`` maps a stay id
    to the server id of its Encounter; a transition's source is the stay it leaves (or, if it
    leaves none, the stay it enters).
    """
    now = now or utcnow()
    encounters = source_encounters or {}
    moves = list(transitions)
    new: list[RecordedTransition] = []
    for t in moves:
        stay = t.from_stay or t.to_stay
        values = _values(case_id, t, encounters.get(stay) if stay else None)
        _redate(session, values, {m.date for m in moves if (m.from_stay, m.to_stay) == (t.from_stay, t.to_stay)})
        stmt = insert(session, TransitionRow).values(**values, recorded_at=now, updated_at=now)
        inserted = session.execute(stmt.on_conflict_do_nothing(index_elements=list(_KEY)).returning(TransitionRow.id))
        if inserted.first() is not None:
            source = values["source_encounter"]
            new.append(RecordedTransition(**t.model_dump(), case_id=case_id, source_encounter=source, recorded_at=now))
            continue
        changed = {k: v for k, v in values.items() if k not in _KEY and (k != "source_encounter" or v is not None)}
        session.execute(
            update(TransitionRow)
            .where(*(getattr(TransitionRow, k) == values[k] for k in _KEY))
            .values(**changed, updated_at=now)
        )
    return new


def _redate(session: Session, values: Mapping[str, Any], derived: set[dt.date]) -> None:
    """Move to ``values``' date the move recorded between the same stays on a day no longer derived:
    the hospital corrected a stay's date, and it is the same move (first seen when it was), not a new one."""
    t = TransitionRow
    same = (t.case_id == values["case_id"], t.from_stay == values["from_stay"], t.to_stay == values["to_stay"])
    dates = set(session.scalars(select(t.date).where(*same)))
    stale = sorted(dates - derived)
    if values["date"] not in dates and stale:
        session.execute(update(t).where(*same, t.date == stale[0]).values(date=values["date"]))


def list_transitions(session: Session, case_id: str | None = None) -> list[RecordedTransition]:
    """Recorded transitions, of one case or all, ordered by case and date (one this version cannot
    read left out: see ``_recorded``)."""
    t = TransitionRow
    query = select(t.id, *_FIELDS).order_by(t.case_id, t.date, t.id)
    if case_id is not None:
        query = query.where(t.case_id == case_id)
    return [recorded for row in session.execute(query) if (recorded := _recorded(row._mapping)) is not None]


_FIELDS = tuple(c for c in TransitionRow.__table__.c if c.name in RecordedTransition.model_fields)


def _recorded(row: Mapping[Any, Any]) -> RecordedTransition | None:
    """The row as a transition; None (logged by row and case id, no values) for one stored before a
    rule of the model that this version cannot read (a receiving provider's id it now refuses)."""
    try:
        return RecordedTransition.model_validate(
            {**row, "from_stay": row["from_stay"] or None, "to_stay": row["to_stay"] or None}
        )
    except ValidationError:
        log.warning(
            "recorded transition %s of case %s cannot be read by this version and is left out",
            row["id"],
            row["case_id"],
        )
        return None


def case_transitions(
    session: Session, case_id: str | None = None, *, skipped: list[UnreadableCase] | None = None
) -> list[RecordedTransition]:
    """Every transition of the stored cases, as their stays show them now, with what was recorded.

    A case's transitions are derived from its stays wherever they came from (import, API, tracker),
    so this is what a person asking "where has this patient moved?" wants. What the tracker recorded
    (the source Encounter, when it first saw the move) is attached; a recorded move the stays no
    longer show is still listed, so nothing the tracker acted on disappears from view — nor does
    it for a case this version cannot read, which ``skipped`` then names (``list_cases``).
    """
    recorded = {_row_key(t): t for t in list_transitions(session, case_id)}
    records = (
        [get_case_record(session, case_id)] if case_id is not None else list_case_records(session, skipped=skipped)
    )
    out: list[RecordedTransition] = []
    for record in records:
        if record is None:
            continue
        case = record.case
        for t in case.transitions:
            seen = recorded.pop((case.id, t.from_stay or "", t.to_stay or "", t.date), None)
            out.append(
                RecordedTransition(
                    **t.model_dump(),
                    case_id=case.id,
                    source_encounter=seen.source_encounter if seen else None,
                    recorded_at=seen.recorded_at if seen else None,
                )
            )
    out.extend(recorded.values())
    return transitions_as_written(sorted(out, key=lambda t: (t.case_id, t.date)), {r.case.id: r for r in records if r})


def transitions_as_written(
    transitions: Iterable[RecordedTransition], records: Mapping[str, CaseRecord]
) -> list[RecordedTransition]:
    """``transitions`` with their dates said as written (``with_dates_as_written``), each by its case's
    ``dates_as_written`` kept in ``records`` (by case id); a case not among them leaves its moves as they are."""
    out: list[RecordedTransition] = []
    for t in transitions:
        record = records.get(t.case_id)
        out.extend(with_dates_as_written(record.case, [t], record.dates_as_written) if record else [t])
    return out


def _row_key(t: RecordedTransition) -> tuple[str, str, str, dt.date]:
    return (t.case_id, t.from_stay or "", t.to_stay or "", t.date)
