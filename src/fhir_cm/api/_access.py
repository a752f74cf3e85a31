"""Who may see and change which case.

* A **case manager** works the cases they manage (``Case.case_manager``) and those whose care
  team currently includes them (a membership begun by today — or without a start — that has no end,
  or ends today or later). A membership entered ahead of its start gives no access until that day.
  Another server's practitioner of their id (an outside party, ``Party.server``) is someone else.
* A **supervisor** oversees every case of their programme; a supervisor key without a programme
  oversees every programme.
* A **service** reads the FHIR facade only, never the case-management API.

A case the caller may not see answers 404, exactly like one that does not exist, so ids cannot be
probed. Seeing a case is enough to work on it: "the case manager / supervisor moves it".
"""

from __future__ import annotations

import datetime as dt

from fhir_cm.domain import Case, PartyKind, ProgrammeType, TeamMember
from sqlalchemy.orm import Session

from fhir_cm.store import ApiRole, CaseRecord, UnreadableCase, get_case_record

from ._auth import Principal
from ._problems import ForbiddenProblem

__all__ = [
    "can_see",
    "can_see_kept",
    "check_may_create",
    "check_may_reassign",
    "check_programme",
    "may_see_unreadable",
    "programme_scope",
    "readers",
    "sees_stored",
    "visible_record",
]


def _current(member: TeamMember, today: dt.date) -> bool:
    """A membership begun by today (or without a start) that has not ended before it."""
    return (member.start is None or member.start <= today) and (member.end is None or member.end >= today)


def _on_team(case: Case, practitioner_id: str, today: dt.date) -> bool:
    # The local practitioner, never another server's of the same id (an outside party).
    return any(m.party.is_local(PartyKind.PRACTITIONER, practitioner_id) and _current(m, today) for m in case.team)


def can_see(principal: Principal, case: Case, today: dt.date) -> bool:
    """Whether ``principal`` may read (and so work on) ``case``."""
    if principal.role is ApiRole.SUPERVISOR:
        return principal.programme is None or case.programme is principal.programme
    if principal.role is ApiRole.CASE_MANAGER and principal.practitioner_id:
        manages = case.case_manager is not None and case.case_manager.is_local(
            PartyKind.PRACTITIONER, principal.practitioner_id
        )
        return manages or _on_team(case, principal.practitioner_id, today)
    return False


def readers(case: Case, today: dt.date) -> frozenset[str]:
    """The local practitioners whose case-manager key may see ``case`` today (its case manager, its
    team's current members): what a view kept once for every caller holds of who sees each case, to
    judge each caller by (:func:`can_see_kept`). ``can_see`` agrees with it (``tests/api/test_access.py``)."""
    seen = {
        m.party.id for m in case.team if m.party.is_local(PartyKind.PRACTITIONER, m.party.id) and _current(m, today)
    }
    manager = case.case_manager
    if manager is not None and manager.is_local(PartyKind.PRACTITIONER, manager.id):
        seen.add(manager.id)
    return frozenset(seen)


def can_see_kept(principal: Principal, programme: ProgrammeType, seen_by: frozenset[str]) -> bool:
    """:func:`can_see`, judged from what a view shared by every caller keeps of a case: its programme
    and its :func:`readers` on the view's day."""
    if principal.role is ApiRole.SUPERVISOR:
        return principal.programme is None or programme is principal.programme
    if principal.role is ApiRole.CASE_MANAGER and principal.practitioner_id:
        return principal.practitioner_id in seen_by
    return False


def may_see_unreadable(principal: Principal, unreadable: UnreadableCase) -> bool:
    """Whether ``principal`` may be told of a stored case this version cannot read, judged by its
    row's own columns (its programme, its case manager): the team inside it cannot be read, so a
    case manager on its team only learns of it from a supervisor or `fhir-cm check`."""
    if principal.role is ApiRole.SUPERVISOR:
        return principal.programme is None or unreadable.programme == principal.programme.value
    if principal.role is ApiRole.CASE_MANAGER and principal.practitioner_id:
        return unreadable.case_manager_id == principal.practitioner_id
    return False


def sees_stored(session: Session, principal: Principal, case_id: str, today: dt.date) -> bool:
    """Whether ``principal`` may see the stored case ``case_id`` (False if there is none), for rows
    about a case (audit entries, conflicts, transitions) listed without it. A case this version
    cannot read is judged by its row (``may_see_unreadable``): its rows stay listed, the list whole."""
    return visible_record(session, principal, case_id, today)[0]


def visible_record(
    session: Session, principal: Principal, case_id: str, today: dt.date
) -> tuple[bool, CaseRecord | None]:
    """:func:`sees_stored`, and the stored case read to judge it (None: none, or one this version
    cannot read), for a list that says something of each case its rows name."""
    try:
        record = get_case_record(session, case_id)
    except UnreadableCase as exc:
        return may_see_unreadable(principal, exc), None
    return record is not None and can_see(principal, record.case, today), record


def programme_scope(principal: Principal) -> ProgrammeType | None:
    """The programme a supervisor is limited to (None: all), for filtering in the store."""
    return principal.programme if principal.role is ApiRole.SUPERVISOR else None


def check_programme(principal: Principal, programme: ProgrammeType) -> None:
    """Refuse (403) a supervisor limited to one programme making cases in another."""
    if principal.role is ApiRole.SUPERVISOR and principal.programme not in (None, programme):
        raise ForbiddenProblem(f"this supervisor key is limited to programme '{principal.programme}'")


def check_may_create(principal: Principal, case: Case) -> None:
    """Refuse (403) a new case its creator could not see afterwards."""
    check_programme(principal, case.programme)
    if principal.role is ApiRole.CASE_MANAGER and (
        principal.practitioner_id is None
        or case.case_manager is None
        or not case.case_manager.is_local(PartyKind.PRACTITIONER, principal.practitioner_id)
    ):
        raise ForbiddenProblem("a case manager may only create cases they manage themselves (case_manager.id)")


def check_may_reassign(principal: Principal) -> None:
    """Only supervisors hand cases from one case manager to another."""
    if principal.role is not ApiRole.SUPERVISOR:
        raise ForbiddenProblem("only a supervisor may change a case's case manager")
