"""What the CDS Hooks service said, and what clinicians did with it.

Every card issued is remembered (its uuid, the service, its kind, whom it was about; a card that
suggests a referral with the eligibility reasons), since feedback names nothing but the card: feedback
is taken only for a card its service issued, and accepting a referral suggestion makes the referred
case from what the card remembers. Feedback is kept as received (accepted or overridden, with the
override reason), for the programme to see how its rules land with clinicians.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._dialect import insert
from ._tables import ID, URL, Base
from ._types import Json, UTCDateTime, utcnow

__all__ = [
    "CARD_KEPT",
    "IssuedCard",
    "RecordedFeedback",
    "card_issued",
    "list_feedback",
    "record_card",
    "record_feedback",
]


class CdsCardRow(Base):
    """A card a service issued (``kind``: eligible, open-case, transition-plan), which feedback may name."""

    __tablename__ = "cds_cards"

    uuid: Mapped[str] = mapped_column(String(128), primary_key=True)
    service_id: Mapped[str] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(32))
    patient_id: Mapped[str] = mapped_column(String(ID))
    eligibility: Mapped[list[str]] = mapped_column(Json)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    #: The call's ``fhirServer``, whose id ``patient_id`` is (None: the call named none) — migration 0024.
    server_base: Mapped[str | None] = mapped_column(String(URL))


class CdsFeedbackRow(Base):
    """One card's outcome as the EHR reported it."""

    __tablename__ = "cds_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(ID))
    card_uuid: Mapped[str] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    accepted: Mapped[list[str]] = mapped_column(Json)
    override_reason: Mapped[dict[str, Any] | None] = mapped_column(Json)
    outcome_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    case_id: Mapped[str | None] = mapped_column(String(ID))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class IssuedCard(BaseModel):
    uuid: str
    service_id: str
    kind: str
    patient_id: str
    eligibility: list[str] = Field(default_factory=list)
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    server_base: str | None = Field(default=None, description="The FHIR server whose id patient_id is.")


class RecordedFeedback(BaseModel):
    id: int
    service_id: str
    card_uuid: str
    outcome: str
    accepted: list[str]
    override_reason: dict[str, Any] | None = None
    outcome_at: dt.datetime
    case_id: str | None = None


#: How long an issued card can take feedback. A card is shown per chart opened, so every hook call
#: with a card adds a row; feedback follows within the clinician's session, and a month is ample.
CARD_KEPT = dt.timedelta(days=30)


def record_card(session: Session, card: IssuedCard, *, now: dt.datetime | None = None) -> None:
    """Remember ``card``, and forget the cards issued more than :data:`CARD_KEPT` ago (by the index
    on ``issued_at``: most calls find none), so the table holds a month of cards, not every one."""
    now = now or utcnow()
    session.execute(delete(CdsCardRow).where(CdsCardRow.issued_at < now - CARD_KEPT))
    row = {**card.model_dump(), "issued_at": now}
    session.execute(insert(session, CdsCardRow).values(row).on_conflict_do_nothing())


def card_issued(session: Session, uuid: str) -> IssuedCard | None:
    row = session.execute(select(CdsCardRow).where(CdsCardRow.uuid == uuid)).scalar_one_or_none()
    if row is None:
        return None
    return IssuedCard(
        uuid=row.uuid,
        service_id=row.service_id,
        kind=row.kind,
        patient_id=row.patient_id,
        eligibility=row.eligibility,
        reasons=row.reasons,
        server_base=row.server_base,
    )


def record_feedback(
    session: Session,
    *,
    service_id: str,
    card_uuid: str,
    outcome: str,
    accepted: list[str],
    override_reason: dict[str, Any] | None,
    outcome_at: dt.datetime,
    case_id: str | None,
    now: dt.datetime | None = None,
) -> int:
    values = {
        "service_id": service_id,
        "card_uuid": card_uuid,
        "outcome": outcome,
        "accepted": accepted,
        "override_reason": override_reason,
        "outcome_at": outcome_at,
        "case_id": case_id,
        "received_at": now or utcnow(),
    }
    result = session.execute(insert(session, CdsFeedbackRow).values(values).returning(CdsFeedbackRow.id))
    return int(result.scalar_one())


def list_feedback(session: Session, service_id: str | None = None) -> list[RecordedFeedback]:
    query = select(CdsFeedbackRow).order_by(CdsFeedbackRow.id)
    if service_id is not None:
        query = query.where(CdsFeedbackRow.service_id == service_id)
    return [
        RecordedFeedback(
            id=r.id,
            service_id=r.service_id,
            card_uuid=r.card_uuid,
            outcome=r.outcome,
            accepted=r.accepted,
            override_reason=r.override_reason,
            outcome_at=r.outcome_at,
            case_id=r.case_id,
        )
        for r in session.execute(query).scalars()
    ]
