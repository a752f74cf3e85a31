"""The Patients each screened Group listed when it was last screened, per server.

A Group's screening continues from its watermark: its export asks for what changed ``_since`` then,
and the server filters by each resource's lastUpdated. A Patient added to the Group since, whose own
data is older, is not in that export; the screening tells them apart by the members kept here (those
the Group lists now and did not then), reads them whole, and keeps the new list with the watermark.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._dialect import insert, normal_base
from ._tables import ID, URL, Base

__all__ = ["keep_group_members", "screened_group_members"]

#: Member ids per statement (databases bound the parameters of one).
_SLICE = 1000


class ScreeningGroupMemberRow(Base):
    """One Patient a Group listed when its screening last set its watermark."""

    __tablename__ = "screening_group_members"

    server_base: Mapped[str] = mapped_column(String(URL), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(ID), primary_key=True)


def screened_group_members(session: Session, server_base: str, group_id: str) -> set[str]:
    """The Patients ``group_id`` listed when last screened (none: never screened, or listing no one)."""
    query = select(ScreeningGroupMemberRow.patient_id).where(
        ScreeningGroupMemberRow.server_base == normal_base(server_base), ScreeningGroupMemberRow.group_id == group_id
    )
    return set(session.scalars(query))


def keep_group_members(
    session: Session, server_base: str, group_id: str, members: Collection[str], known: Collection[str]
) -> None:
    """Keep ``members`` as the Group's list, ``known`` being the list kept so far: only the Patients
    who joined are written and only those who left are deleted (a Group of thousands that gained one
    member costs one row, not thousands)."""
    base = normal_base(server_base)
    joined = sorted(set(members) - set(known))
    left = sorted(set(known) - set(members))
    for start in range(0, len(joined), _SLICE):
        rows = [{"server_base": base, "group_id": group_id, "patient_id": p} for p in joined[start : start + _SLICE]]
        session.execute(insert(session, ScreeningGroupMemberRow).values(rows).on_conflict_do_nothing())
    for start in range(0, len(left), _SLICE):
        session.execute(
            delete(ScreeningGroupMemberRow).where(
                ScreeningGroupMemberRow.server_base == base,
                ScreeningGroupMemberRow.group_id == group_id,
                ScreeningGroupMemberRow.patient_id.in_(left[start : start + _SLICE]),
            )
        )
