"""What a view shared by every caller keeps of who may see a case (``readers``) agrees with ``can_see``."""

from __future__ import annotations

import datetime as dt

from fhir_cm.api._access import can_see, can_see_kept, readers
from fhir_cm.api._auth import Principal
from fhir_cm.domain import Case, Party, PartyKind, ProgrammeType, TeamMember
from fhir_cm.store import ApiRole
from fhir_cm.synthetic import generate_cases

TODAY = dt.date(2025, 6, 30)


def _case_managers(case: Case) -> set[str]:
    """Every practitioner id the case names, local or not, and one it does not."""
    named = {m.party.id for m in case.team}
    if case.case_manager is not None:
        named.add(case.case_manager.id)
    return named | {"nobody"}


def _with_outside_namesake(case: Case) -> Case:
    """The case with another server's practitioner of its manager's id on its team: someone else."""
    if case.case_manager is None:
        return case
    outsider = Party(kind=PartyKind.PRACTITIONER, id=case.case_manager.id, server="https://elsewhere.example/fhir")
    member = TeamMember(id="outside", role="nurse", party=outsider, start=TODAY - dt.timedelta(days=10))
    return case.model_copy(update={"case_manager": None, "team": [*case.team, member]})


def test_a_case_managers_key_sees_a_case_exactly_when_the_kept_readers_name_them() -> None:
    cases = list(generate_cases(80, seed=21, today=TODAY))
    cases += [_with_outside_namesake(c) for c in cases[:20]]
    days = [TODAY, TODAY - dt.timedelta(days=90), TODAY - dt.timedelta(days=400), TODAY + dt.timedelta(days=30)]
    checked = seen = 0
    for case in cases:
        for day in days:
            kept = readers(case, day)
            for practitioner in _case_managers(case):
                principal = Principal(id="k", name="k", role=ApiRole.CASE_MANAGER, practitioner_id=practitioner)
                sees = can_see(principal, case, day)
                assert sees == can_see_kept(principal, case.programme, kept), (case.id, day, practitioner)
                checked, seen = checked + 1, seen + sees
    assert 0 < seen < checked  # some keys see some cases, and some do not


def test_a_supervisor_is_judged_by_programme_and_a_service_sees_nothing() -> None:
    case = next(iter(generate_cases(1, seed=5, today=TODAY)))
    other = next(p for p in ProgrammeType if p is not case.programme)
    for programme, role in [
        (None, ApiRole.SUPERVISOR),
        (case.programme, ApiRole.SUPERVISOR),
        (other, ApiRole.SUPERVISOR),
        (None, ApiRole.SERVICE),
    ]:
        principal = Principal(id="k", name="k", role=role, programme=programme)
        assert can_see(principal, case, TODAY) == can_see_kept(principal, case.programme, readers(case, TODAY))
    assert not can_see_kept(Principal(id="k", name="k", role=ApiRole.SERVICE), case.programme, readers(case, TODAY))
