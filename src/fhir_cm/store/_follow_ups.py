"""How long a hospital discharge took to become a follow-up on the hospital's server.

When the tracker sees a discharge it asks for a follow-up (a ServiceRequest and Task due in 7 days)
and the pull round pushes it at once. The time from when fhir-cm learned of the discharge to when the
server accepted the follow-up is what a case manager waits; each is recorded here once per follow-up,
and ``/metrics`` shows them as a histogram.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._dialect import insert
from ._tables import ID, Base
from ._types import UTCDateTime

__all__ = ["follow_up_latencies", "record_follow_ups_on_server"]


class FollowUpLatencyRow(Base):
    """One follow-up: when its discharge was learned of, and when the server held the follow-up."""

    __tablename__ = "follow_up_latencies"

    case_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    referral_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    learned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    on_server_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


def record_follow_ups_on_server(
    session: Session, follow_ups: Iterable[tuple[str, str]], *, learned_at: dt.datetime, on_server_at: dt.datetime
) -> None:
    """Record ``(case id, referral id)`` follow-ups as on the server (the first time only)."""
    rows = [
        {"case_id": c, "referral_id": r, "learned_at": learned_at, "on_server_at": on_server_at}
        for c, r in dict.fromkeys(follow_ups)
    ]
    if rows:
        session.execute(insert(session, FollowUpLatencyRow).values(rows).on_conflict_do_nothing())


def follow_up_latencies(session: Session) -> list[float]:
    """Seconds from learning of a discharge to its follow-up on the server, one per follow-up."""
    rows = session.execute(select(FollowUpLatencyRow.learned_at, FollowUpLatencyRow.on_server_at))
    return [max((on - learned).total_seconds(), 0.0) for learned, on in rows]
