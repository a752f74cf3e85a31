"""Placement offers: one post-discharge placement asked of several candidate facilities, as tracked here.

The offer itself lives on the FHIR server (one ServiceRequest, one Task per candidate); the store keeps
which server resources make up which offer, and each candidate's answer as last read back, so the
offer can be listed, followed and settled without searching the server for it again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._dialect import normal_base
from ._tables import ID, URL, Base
from ._types import Json, UTCDateTime, utcnow

__all__ = ["Candidate", "Placement", "get_placement", "list_placements", "put_placement"]


class PlacementRow(Base):
    """One placement offer of a case to candidate facilities on one server."""

    __tablename__ = "placements"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(ID), index=True)
    server_base: Mapped[str] = mapped_column(String(URL))
    setting: Mapped[str] = mapped_column(String(ID))
    service: Mapped[str] = mapped_column(String(1000))
    service_request_id: Mapped[str] = mapped_column(String(ID))
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    chosen: Mapped[str | None] = mapped_column(String(ID))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Candidate(BaseModel):
    """A candidate facility, its Task on the server, and its answer as last read back."""

    model_config = ConfigDict(frozen=True)

    organization: str
    task_id: str
    status: str = "requested"
    business_status: str | None = None
    reason: str | None = None
    questions: list[str] = []


class Placement(BaseModel):
    """A placement offer: the ServiceRequest, the candidates' Tasks, and the facility chosen, if any."""

    model_config = ConfigDict(frozen=True)

    id: str
    case_id: str
    server_base: str
    setting: str
    service: str
    service_request_id: str
    candidates: list[Candidate]
    chosen: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime


def _placement(row: PlacementRow) -> Placement:
    return Placement(
        id=row.id,
        case_id=row.case_id,
        server_base=row.server_base,
        setting=row.setting,
        service=row.service,
        service_request_id=row.service_request_id,
        candidates=[Candidate.model_validate(c) for c in row.candidates],
        chosen=row.chosen,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def put_placement(session: Session, placement: Placement) -> Placement:
    """Insert the offer, or store its candidates' answers and choice as they stand now."""
    now = utcnow()
    values = {
        "candidates": [c.model_dump() for c in placement.candidates],
        "chosen": placement.chosen,
        "updated_at": now,
    }
    if session.get(PlacementRow, placement.id) is None:
        session.add(
            PlacementRow(
                id=placement.id,
                case_id=placement.case_id,
                server_base=normal_base(placement.server_base),
                setting=placement.setting,
                service=placement.service,
                service_request_id=placement.service_request_id,
                created_at=now,
                **values,
            )
        )
    else:
        session.execute(update(PlacementRow).where(PlacementRow.id == placement.id).values(**values))
    session.flush()
    found = get_placement(session, placement.id)
    assert found is not None
    return found


def get_placement(session: Session, placement_id: str) -> Placement | None:
    """One offer by id."""
    row = session.get(PlacementRow, placement_id)
    if row is not None:
        session.refresh(row)
    return _placement(row) if row is not None else None


def list_placements(session: Session, case_id: str | None = None) -> list[Placement]:
    """Offers (of one case), oldest first."""
    query = select(PlacementRow).order_by(PlacementRow.created_at, PlacementRow.id)
    if case_id is not None:
        query = query.where(PlacementRow.case_id == case_id)
    return [_placement(r) for r in session.scalars(query)]
