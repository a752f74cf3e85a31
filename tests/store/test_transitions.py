"""Transitions: recorded once per move, updated in place as more becomes known."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from fhir_cm.domain import (
    CareSetting,
    Case,
    DischargeDisposition,
    Party,
    PartyKind,
    Referral,
    ReferralKind,
    Stay,
    Transition,
    derive_transitions,
)
from fhir_cm.store import RecordedTransition, Store, list_transitions, record_transitions, save_case

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=1)
D = dt.date

SNF = Party(kind=PartyKind.ORGANISATION, id="snf-9", name="Sunny Rehab")
STAYS = [
    Stay(
        id="h1",
        setting=CareSetting.ACUTE_HOSPITAL,
        start=D(2024, 3, 1),
        end=D(2024, 3, 5),
        discharge_disposition=DischargeDisposition.SKILLED_NURSING,
    ),
    Stay(
        id="s1",
        setting=CareSetting.SKILLED_NURSING,
        start=D(2024, 3, 5),
        end=D(2024, 3, 20),
        discharge_disposition=DischargeDisposition.HOME,
        provider=SNF,
    ),
    Stay(
        id="h2",
        setting=CareSetting.ACUTE_HOSPITAL,
        start=D(2024, 4, 1),
        end=D(2024, 4, 4),
        discharge_disposition=DischargeDisposition.HOME,
    ),
]
FOLLOW_UP = Referral(
    id="fu1",
    kind=ReferralKind.FOLLOW_UP,
    service="Follow-up visit",
    authored=D(2024, 3, 5),
    due=D(2024, 3, 12),
    for_stay="h1",
)


@pytest.fixture
def journey(store: Store, make_case: Callable[..., Case]) -> list[Transition]:
    """A hospital → SNF → home → readmission journey; its transitions as the domain derives them."""
    with store.session() as s:
        save_case(s, make_case("case-1", stays=STAYS))
        save_case(s, make_case("case-2"))
    transitions = derive_transitions(STAYS)
    # Home → hospital has no stay it leaves, and going home has no stay it enters: the NULL-ish keys.
    assert any(t.from_stay is None for t in transitions) and any(t.to_stay is None for t in transitions)
    return transitions


def test_transitions_are_recorded_and_listed_as_derived(store: Store, journey: list[Transition]) -> None:
    encounters = {"h1": "Encounter/101", "s1": "Encounter/102", "h2": "Encounter/103"}
    with store.session() as s:
        new = record_transitions(s, "case-1", journey, source_encounters=encounters, now=T0)
    with store.session(read_only=True) as s:
        listed = list_transitions(s, "case-1")
    assert new == listed
    assert [
        Transition.model_validate(t.model_dump(exclude={"case_id", "source_encounter", "recorded_at"})) for t in listed
    ] == journey
    assert [t.source_encounter for t in listed] == [encounters[t.from_stay or t.to_stay or ""] for t in journey]
    assert {t.recorded_at for t in listed} == {T0}
    assert [t.readmission for t in listed] == [t.readmission for t in journey]
    assert any(t.readmission for t in listed)


def test_recording_again_adds_nothing(store: Store, journey: list[Transition]) -> None:
    with store.session() as s:
        record_transitions(s, "case-1", journey, now=T0)
    with store.session() as s:
        assert record_transitions(s, "case-1", journey, now=T1) == []
        assert len(list_transitions(s)) == len(journey)


def test_later_knowledge_updates_a_transition_in_place(store: Store, journey: list[Transition]) -> None:
    with store.session() as s:
        record_transitions(s, "case-1", journey, source_encounters={"h1": "Encounter/101"}, now=T0)
    with_follow_up = derive_transitions(STAYS, [FOLLOW_UP])
    with store.session() as s:
        assert record_transitions(s, "case-1", with_follow_up, now=T1) == []
        first = list_transitions(s, "case-1")[0]
    assert (first.from_stay, first.follow_up_due) == ("h1", D(2024, 3, 12))
    assert (first.recorded_at, first.source_encounter) == (T0, "Encounter/101")  # kept, not blanked


def test_transitions_are_listed_per_case(store: Store, journey: list[Transition]) -> None:
    with store.session() as s:
        record_transitions(s, "case-1", journey[:1], now=T0)
        record_transitions(s, "case-2", journey[:2], now=T0)
    with store.session(read_only=True) as s:
        assert [t.case_id for t in list_transitions(s)] == ["case-1", "case-2", "case-2"]
        assert all(isinstance(t, RecordedTransition) for t in list_transitions(s, "case-2"))
        assert list_transitions(s, "nope") == []


def test_a_recorded_transition_this_version_cannot_read_is_left_out_and_named(
    store: Store, journey: list[Transition], caplog: pytest.LogCaptureFixture
) -> None:
    """Its receiving provider stored before '..' was refused as an id: the list is the others, not an error."""
    import logging

    from sqlalchemy import select, update

    from fhir_cm.store._tables import TransitionRow

    with store.session() as s:
        record_transitions(s, "case-1", journey, now=T0)
        bad = s.execute(select(TransitionRow.id).where(TransitionRow.receiving_provider.is_not(None))).scalar_one()
        old = {"kind": "organisation", "id": "..", "name": "Hidden Name Home"}
        s.execute(update(TransitionRow).where(TransitionRow.id == bad).values(receiving_provider=old))

    with caplog.at_level(logging.WARNING), store.session(read_only=True) as s:
        listed = list_transitions(s)
        per_case = list_transitions(s, "case-1")

    assert listed == per_case and len(listed) == len(journey) - 1
    assert all(t.receiving_provider is None for t in listed)
    assert f"recorded transition {bad} of case case-1" in caplog.text and "Hidden Name" not in caplog.text
