"""Who and what the stored cases name: the practitioners on them and the programmes they belong to.

An API key stands for a practitioner (a case manager sees their own cases and those whose team
includes them) or a programme (a supervisor's scope). A key for an id the data never mentions sees
nothing, silently; these lookups let ``fhir-cm apikey create`` refuse one instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ._tables import CaseRow

__all__ = ["practitioner_on_cases", "practitioners_starting_with", "programmes_in_use"]

#: Rows read at a time when looking into the cases' JSON (care-team members live there).
_BATCH = 500


def _on_team(data: dict[str, Any], practitioner_id: str) -> bool:
    for member in data.get("team") or ():
        party = member.get("party") or {}
        if party.get("kind") == "practitioner" and party.get("id") == practitioner_id and not party.get("server"):
            return True
    return False


def practitioner_on_cases(session: Session, practitioner_id: str) -> bool:
    """Whether some stored case has this practitioner as its case manager or on its care team."""
    query = select(CaseRow.case_id).where(CaseRow.case_manager_id == practitioner_id).limit(1)
    if session.execute(query).first() is not None:
        return True
    rows = session.execute(select(CaseRow.data).execution_options(yield_per=_BATCH)).scalars()
    return any(_on_team(data, practitioner_id) for data in rows)


def practitioners_starting_with(session: Session, prefix: str, *, limit: int = 5) -> list[str]:
    """Case-manager ids that begin with ``prefix`` (someone typed the start of an id), at most ``limit``."""
    if not prefix:
        return []
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = (
        select(CaseRow.case_manager_id)
        .where(CaseRow.case_manager_id.like(pattern, escape="\\"))
        .distinct()
        .order_by(CaseRow.case_manager_id)
        .limit(limit)
    )
    return [str(i) for i in session.execute(query).scalars() if i is not None]


def programmes_in_use(session: Session) -> set[str]:
    """The programmes of the stored cases."""
    return {str(p) for p in session.execute(select(CaseRow.programme).distinct()).scalars()}
