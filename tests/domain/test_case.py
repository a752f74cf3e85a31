"""The case model: validation a person can act on, status history, derived views."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import BaseModel, ValidationError

from fhir_cm.domain import (
    CareSetting,
    Case,
    CaseStatus,
    Contact,
    ContactMode,
    CurrentSetting,
    Goal,
    Need,
    Party,
    PartyKind,
    Referral,
    ReferralKind,
    StatusChange,
    case_as_of,
)
from fhir_cm.synthetic import generate_cases

D = dt.date


def make_case(**kw: object) -> Case:
    base: dict[str, object] = {
        "id": "case-1",
        "programme": "health-care",
        "period": {"start": "2026-01-01"},
        "patient": {"kind": "patient", "id": "p1"},
    }
    base.update(kw)
    return Case.model_validate(base)


def test_minimal_case_defaults() -> None:
    case = make_case()
    assert case.status is CaseStatus.ACTIVE
    assert case.is_open
    assert case.transitions == []


def test_unknown_field_is_rejected_with_its_name() -> None:
    with pytest.raises(ValidationError) as err:
        make_case(programe="health-care")
    assert "programe" in str(err.value)


def test_bad_programme_lists_what_is_allowed() -> None:
    with pytest.raises(ValidationError) as err:
        make_case(programme="wellness")
    assert "health-care" in str(err.value)


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b[31m", "\x0b"])
def test_text_with_a_control_character_is_refused_with_the_field_named(bad: str) -> None:
    """FHIR strings may not hold C0 control characters: the domain says so before a server would."""
    with pytest.raises(ValidationError) as err:
        make_case(plan_summary=f"before{bad}after")
    assert err.value.errors()[0]["loc"] == ("plan_summary",)
    assert "control characters" in str(err.value)
    with pytest.raises(ValidationError, match="control characters"):
        make_case(
            needs=[{"domain": "social", "finding": "ok", "strengths": ["fine", f"x{bad}"], "recorded": "2026-01-02"}]
        )


def _text_fields(model: type[BaseModel]) -> list[tuple[str, bool]]:
    """The fields of ``model`` that hold free text (a string, or a list of strings: ``True``), as its
    JSON schema tells: no date, no code, no nested model."""
    found = []
    for name, prop in model.model_json_schema()["properties"].items():
        for kind in prop.get("anyOf", [prop]):
            items = kind.get("items", {}) if kind.get("type") == "array" else None
            shape = items if items is not None else kind
            if shape.get("type") == "string" and not {"format", "enum", "$ref"} & shape.keys():
                found.append((name, items is not None))
    return found


def test_every_text_field_of_every_model_refuses_control_characters() -> None:
    """Each field a person types into (every string of every model, found from the schemas: a field
    added later is checked too) refuses a control character, naming the field."""
    case = next(c for c in generate_cases(200, seed=21) if c.referrals and c.stays and c.team and c.needs)
    examples: list[BaseModel] = [
        case,
        case.needs[0],
        case.goals[0],
        case.referrals[0],
        case.team[0],
        case.contacts[0],
        case.stays[0],
        case.patient,
        Party(kind=PartyKind.ORGANISATION, id="org-1", name="Home Health Co", server="https://ehr.example/fhir"),
        StatusChange(status=CaseStatus.ACTIVE, start=dt.date(2024, 1, 1), reason="enrolled"),
    ]
    checked = set()
    for example in examples:
        model = type(example)
        for name, many in _text_fields(model):
            data = example.model_dump(mode="json")
            data[name] = ["bell\x07"] if many else "https://x\x07.example" if name == "server" else "bell\x07"
            with pytest.raises(ValidationError) as err:
                model.model_validate(data)
            assert err.value.errors()[0]["loc"][0] == name, (model.__name__, name)
            checked.add(f"{model.__name__}.{name}")
    # The free text the case model has today, among others: a field that lost its check would fail above.
    assert {"Case.plan_summary", "Need.strengths", "Goal.description", "Contact.note", "Party.server"} <= checked


def test_tabs_and_line_breaks_in_text_are_kept() -> None:
    assert make_case(plan_summary="line one\r\nline\ttwo").plan_summary == "line one\r\nline\ttwo"


def test_patient_must_be_a_patient() -> None:
    with pytest.raises(ValidationError, match="patient must be a party of kind 'patient'"):
        make_case(patient={"kind": "practitioner", "id": "x"})


def test_goal_must_address_known_needs() -> None:
    goal = Goal(id="g1", description="walk again", start=D(2026, 1, 2), addresses=["n-missing"])
    with pytest.raises(ValidationError, match="addresses unknown needs: n-missing"):
        make_case(goals=[goal])


def test_goal_addressing_a_need_is_accepted() -> None:
    need = Need(id="n1", domain="functional", finding="cannot climb stairs", recorded=D(2026, 1, 2))
    goal = Goal(id="g1", description="climb stairs", due=D(2026, 3, 1), addresses=["n1"])
    assert make_case(needs=[need], goals=[goal]).goals[0].addresses == ["n1"]


def test_ids_must_be_unique_within_a_case() -> None:
    need = Need(id="dup", domain="social", finding="isolated", recorded=D(2026, 1, 2))
    contact = Contact(id="dup", date=D(2026, 1, 3), mode=ContactMode.PHONE)
    with pytest.raises(ValidationError, match="repeated: dup"):
        make_case(needs=[need], contacts=[contact])


@pytest.mark.parametrize("dots", [".", ".."])
def test_an_id_of_one_or_two_dots_is_refused_as_no_url_can_carry_it(dots: str) -> None:
    """FHIR's id rule allows them, but Case/.. is the server's base once a URL is normalised."""
    with pytest.raises(ValidationError, match="should match pattern"):
        make_case(id=dots)
    with pytest.raises(ValidationError, match="should match pattern"):
        Need(id=dots, domain="social", finding="isolated", recorded=D(2026, 1, 2))
    assert Need(id="...", domain="social", finding="isolated", recorded=D(2026, 1, 2)).id == "..."


def test_goal_needs_a_date() -> None:
    with pytest.raises(ValidationError, match="start date or a due date"):
        Goal(description="x")


def test_referral_rejected_needs_reason() -> None:
    with pytest.raises(ValidationError, match="needs a status_reason"):
        Referral(kind=ReferralKind.HOUSING, service="shelter", status="rejected", authored=D(2026, 1, 1))


def test_period_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValidationError, match="ends .* before it starts"):
        make_case(period={"start": "2026-02-01", "end": "2026-01-01"})


def test_closed_case_needs_an_end() -> None:
    with pytest.raises(ValidationError, match="needs period.end"):
        make_case(status="closed", status_history=[{"status": "closed", "start": "2026-01-01"}])


def test_status_history_must_end_in_current_status() -> None:
    with pytest.raises(ValidationError, match="last status_history entry"):
        make_case(status_history=[{"status": "referred", "start": "2026-01-01"}])


def test_change_status_closes_history_and_period() -> None:
    case = make_case()
    case.change_status(CaseStatus.ON_HOLD, D(2026, 1, 10), "patient travelling")
    case.change_status(CaseStatus.CLOSED, D(2026, 2, 1), "goals met")
    assert [s.status for s in case.status_history] == [CaseStatus.ACTIVE, CaseStatus.ON_HOLD, CaseStatus.CLOSED]
    assert case.status_history[0].end == D(2026, 1, 10)
    assert case.status_history[1] == StatusChange(
        status="on-hold", start=D(2026, 1, 10), end=D(2026, 2, 1), reason="patient travelling"
    )
    assert case.period.end == D(2026, 2, 1)
    assert not case.is_open


def test_change_status_cannot_go_back_in_time() -> None:
    case = make_case()
    case.change_status(CaseStatus.ON_HOLD, D(2026, 1, 10))
    with pytest.raises(ValueError, match="before the current status began"):
        case.change_status(CaseStatus.ACTIVE, D(2026, 1, 5))
    assert case.status is CaseStatus.ON_HOLD


def test_last_face_to_face_ignores_phone_calls() -> None:
    case = make_case(
        contacts=[
            Contact(id="c1", date=D(2026, 1, 5), mode="face-to-face"),
            Contact(id="c2", date=D(2026, 1, 9), mode="phone"),
        ]
    )
    assert case.last_face_to_face() == D(2026, 1, 5)


def test_json_round_trip() -> None:
    case = make_case(case_manager=Party(kind="practitioner", id="cm1", name="A. Manager"))
    assert Case.model_validate_json(case.model_dump_json()) == case


def test_current_setting_is_read_off_the_stays() -> None:
    case = make_case()
    assert case.current_setting is None
    moved = make_case(
        stays=[
            {
                "id": "h",
                "setting": "acute-hospital",
                "start": "2026-01-02",
                "end": "2026-01-06",
                "discharge_disposition": "rehab",
            },
        ]
    )
    assert moved.current_setting == CurrentSetting(setting=CareSetting.INPATIENT_REHABILITATION, since=D(2026, 1, 6))
    assert "current_setting" not in moved.model_dump()  # derived, never stored


def test_a_hand_over_keeps_who_managed_the_case_when() -> None:
    """A case manager the team holds no membership of had the case from its start: handed over, the days
    before are theirs and the days from the handover the new manager's; handed to no one, no one's."""
    first, second = (Party(kind="practitioner", id=i) for i in ("cm-1", "cm-2"))
    case = make_case(period={"start": "2025-01-10"}, case_manager=first)
    case.hand_over(second, D(2025, 6, 30))
    assert [(m.party.id, m.role.value, m.start, m.end) for m in case.team] == [
        ("cm-1", "case-manager", D(2025, 1, 10), D(2025, 6, 29)),
        ("cm-2", "case-manager", D(2025, 6, 30), None),
    ]
    managers = {day: case_as_of(case, day).case_manager for day in (D(2025, 6, 29), D(2025, 6, 30))}  # type: ignore[union-attr]
    assert {day: m.id if m else None for day, m in managers.items()} == {D(2025, 6, 29): "cm-1", D(2025, 6, 30): "cm-2"}
    case.hand_over(None, D(2025, 8, 1))
    assert (case.case_manager, case.team[-1].end) == (None, D(2025, 7, 31))
    assert case_as_of(case, D(2025, 8, 1)).case_manager is None  # type: ignore[union-attr]
    assert case_as_of(case, D(2025, 7, 31)).case_manager.id == "cm-2"  # type: ignore[union-attr]
