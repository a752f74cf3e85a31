"""Who may join or leave a case's care team, and when: rules only the whole case can tell.

The team's memberships in the case-manager role are the record of who managed the case when
(``Case.hand_over`` keeps them), which the caseload and the outcomes read "as of" a day: they change
with a hand-over, never on their own. And one person holds one membership in a role at a time, so a
retried request does not list them twice (twice a CareTeam participant).
"""

from __future__ import annotations

import datetime as dt

from fhir_cm.domain import Case, PartyKind, TeamMember, TeamRole

from ._problems import ConflictProblem

__all__ = ["check_new_team", "may_join", "may_leave"]


def _overlap(a: TeamMember, b: TeamMember) -> bool:
    """Whether two memberships share a day (an end is the last day on the team)."""
    return (a.start or dt.date.min) <= (b.end or dt.date.max) and (b.start or dt.date.min) <= (a.end or dt.date.max)


def _managing(member: TeamMember) -> bool:
    """A practitioner in the case-manager role: the record of who managed the case when (``Case.hand_over``),
    which the caseload and outcomes read."""
    return member.role is TeamRole.CASE_MANAGER and member.party.kind is PartyKind.PRACTITIONER


def _hand_over_instead(case: Case) -> ConflictProblem:
    return ConflictProblem(
        f"who manages case {case.id} is changed by handing it over (a supervisor's PATCH /api/v1/cases/{case.id} "
        "with case_manager), which keeps the team's case-manager memberships in step"
    )


def may_join(case: Case, member: TeamMember) -> None:
    """Refuse (409) a member already on the team in that role at the time, and a case-manager membership of
    someone other than the case's case manager (it would move the case to their caseload: a hand-over)."""
    for m in case.team:
        if m.party.same_as(member.party) and m.role is member.role:
            if _overlap(m, member):
                raise ConflictProblem(
                    f"{member.party.id} is already on the team as {member.role} then (team member {m.id})",
                    extra={"member": m.id},
                )
    if _managing(member) and not member.party.same_as(case.case_manager):
        raise _hand_over_instead(case)


def may_leave(case: Case, member: TeamMember) -> None:
    """Refuse (409) ending the case manager's own case-manager membership: from then on the caseload would
    name no one for the case, which still names them."""
    if _managing(member) and member.end is None and member.party.same_as(case.case_manager):
        raise _hand_over_instead(case)


def check_new_team(case: Case) -> None:
    """Refuse (409) a new case whose team breaks ``may_join``: each member is held to those before it."""
    for i, member in enumerate(case.team):
        may_join(case.model_copy(update={"team": case.team[:i]}), member)
