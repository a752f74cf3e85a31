"""Which cases' Encounters the watch has read in full, per server.

The Encounter watch reads, each round, only what changed on a server since its watermark. A case
enrolled after that watermark would never see its patient's earlier Encounters, so the watch reads a
case's whole Encounter history once — the first round that finds it open — and records it here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..domain import CaseStatus
from ._dialect import insert, normal_base
from ._tables import ID, URL, Base, CaseRow
from ._types import UTCDateTime, utcnow

__all__ = ["mark_watched", "open_case_patients", "watched_cases"]


class WatchSeedRow(Base):
    """A case whose patient's whole Encounter history was read from one server."""

    __tablename__ = "watch_seeds"

    server_base: Mapped[str] = mapped_column(String(URL), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    seeded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


def watched_cases(session: Session, server_base: str) -> set[str]:
    """The cases whose Encounter history was read in full from this server."""
    query = select(WatchSeedRow.case_id).where(WatchSeedRow.server_base == normal_base(server_base))
    return set(session.execute(query).scalars())


def mark_watched(
    session: Session, server_base: str, case_ids: Iterable[str], *, now: dt.datetime | None = None
) -> None:
    """Record that these cases' Encounter histories were read in full (again is harmless).

    The first round of a watch seeds every open case: the rows go as one executemany, which the
    driver sends in batches, where one multi-row VALUES passed the drivers' limit on parameters
    (three a row: 21,845 cases on PostgreSQL) and failed the round after every case was read.
    """
    at = now or utcnow()
    rows = [{"server_base": normal_base(server_base), "case_id": c, "seeded_at": at} for c in dict.fromkeys(case_ids)]
    if rows:
        session.execute(insert(session, WatchSeedRow).on_conflict_do_nothing(), rows)


#: The statuses of an open case (referred, waitlisted, active, on hold), as stored.
_OPEN = [s.value for s in (CaseStatus.REFERRED, CaseStatus.WAITLIST, CaseStatus.ACTIVE, CaseStatus.ON_HOLD)]


def open_case_patients(session: Session) -> list[tuple[str, str]]:
    """``(case id, patient id)`` of every open case, from indexed columns (no case is decoded)."""
    query = select(CaseRow.case_id, CaseRow.patient_id).where(CaseRow.status.in_(_OPEN)).order_by(CaseRow.case_id)
    return [(str(c), str(p)) for c, p in session.execute(query)]
