"""References between a case's resources, and to the parties a case names."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from fhir_cm.domain import Party
from fhir_cm.mapping import (
    References,
    ResourceKey,
    foreign_reference,
    iter_references,
    parse_reference,
    party_reference,
    patient_of,
    read_party,
)

GOAL = ResourceKey("Goal", "g1")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/p1", ("Patient", "p1")),
        ("https://ehr.example.org/fhir/Patient/p1", ("Patient", "p1")),
        ("Patient/p1/_history/4", ("Patient", "p1")),
        ("#contained", None),
        ("urn:uuid:0b6b4c2e-0000-0000-0000-000000000000", None),
        ("Patient", None),
        ("patient/p1", None),
        ("Patient/bad_id!", None),
        (None, None),
    ],
)
def test_literal_references_are_parsed_whatever_their_spelling(reference: str | None, expected) -> None:
    assert parse_reference(reference) == expected


HERE, OTHER = "https://ehr.example.org/fhir", "https://other.example/fhir"


@pytest.mark.parametrize(
    ("reference", "elsewhere"),
    [
        ("Patient/p1", None),
        (f"{HERE}/Patient/p1/_history/2", None),
        ("HTTPS://EHR.example.org/fhir/Patient/p1", None),  # a base is no case-sensitive path of ours
        ("#p1", None),
        ("urn:uuid:0b6b4c2e-0000-0000-0000-000000000000", None),
        (f"{OTHER}/Patient/p1", OTHER),
        (f"{OTHER}/Patient/p1/_history/2", OTHER),
        (f"{OTHER}/EpisodeOfCare/e1", OTHER),
        (f"{OTHER}/RelatedPerson/r1", OTHER),  # a patient's relative: theirs
        (f"{OTHER}/Practitioner/d1", None),  # a directory's: no one's record
        (f"{OTHER}/HealthcareService/s1", None),
    ],
)
def test_a_reference_is_another_servers_only_when_absolute_at_another_base(
    reference: str, elsewhere: str | None
) -> None:
    resource = {"resourceType": "Goal", "subject": {"reference": "Patient/p1"}, "addresses": [{"reference": reference}]}
    assert foreign_reference(resource, [HERE + "/"]) == elsewhere


def test_the_patient_named_at_another_base_is_nobody_here() -> None:
    goal = {"resourceType": "Goal", "subject": {"reference": f"{OTHER}/Patient/p1"}}
    assert patient_of(goal) == "p1"  # read as written, for addressing
    assert patient_of(goal, bases=[HERE]) is None
    assert patient_of(goal, bases=[OTHER]) == "p1"
    assert patient_of({"resourceType": "Goal", "subject": {"reference": "Patient/p1"}}, bases=()) == "p1"


def test_a_party_round_trips_and_unholdable_parties_read_as_nothing() -> None:
    party = Party(kind="related-person", id="rp1", name="Bo")
    assert party_reference(party) == {"reference": "RelatedPerson/rp1", "display": "Bo"}
    assert read_party(party_reference(party)) == party
    assert read_party({"reference": "PractitionerRole/pr1"}) is None
    assert read_party({"reference": "Practitioner/x"}, kinds=["patient"]) is None
    assert read_party({"identifier": {"value": "123"}}) is None


def test_keys_become_urn_uuids_until_a_server_id_is_known() -> None:
    refs = References("urn:sys")
    urn = refs.full_url(GOAL)
    assert urn == References("urn:sys").full_url(GOAL) != References("urn:other").full_url(GOAL)
    assert refs.reference(GOAL) == {"reference": urn}
    known = References("urn:sys", {GOAL: "42"})
    assert known.reference(GOAL) == {"reference": "Goal/42"}
    for literal in (urn, "Goal/42", "https://x.org/fhir/Goal/42", "Goal/42/_history/2"):
        assert known.resolve({"reference": literal}) == GOAL
    assert known.resolve({"reference": "Goal/43"}) is None
    assert known.resolve({"display": "no reference"}) is None


def test_bundle_full_urls_resolve_to_their_keys() -> None:
    refs = References("urn:sys")
    refs.know(GOAL, full_url="urn:uuid:11111111-2222-3333-4444-555555555555")
    refs.know(ResourceKey("Condition", "n1"), full_url="https://ehr.example.org/fhir/Condition/9")
    assert refs.resolve({"reference": "urn:uuid:11111111-2222-3333-4444-555555555555"}) == GOAL
    assert refs.resolve({"reference": "Condition/9"}) == ResourceKey("Condition", "n1")


def test_keys_taught_in_bulk_resolve_by_urn_uuid_though_never_written() -> None:
    need = ResourceKey("Condition", "n1")
    refs = References("urn:sys", {GOAL: "42"})
    refs.know_all([need, GOAL])
    assert refs.resolve({"reference": References("urn:sys").full_url(need)}) == need
    assert refs.resolve({"reference": References("urn:sys").full_url(GOAL)}) == GOAL
    assert refs.resolve({"reference": References("urn:sys").full_url(ResourceKey("Goal", "g2"))}) is None


def test_the_reference_shown_for_comparing_follows_a_server_id_learnt_later() -> None:
    refs = References("urn:sys")
    assert refs.shown("Goal", "g1") == refs.reference(GOAL) == {"reference": refs.full_url(GOAL)}
    refs.know(GOAL, server_id="42")
    assert refs.shown("Goal", "g1") == refs.reference(GOAL) == {"reference": "Goal/42"}


def test_every_reference_is_found_in_document_order_however_deep_and_whatever_holds_it() -> None:
    resource = {
        "resourceType": "CarePlan",
        "subject": {"reference": "Patient/p"},
        "activity": [
            {"reference": {"reference": "ServiceRequest/s1"}, "detail": None},
            {"plannedActivityReference": MappingProxyType({"reference": "Task/t1", "display": "x"})},
            [[{"reference": "Goal/g1"}]],
        ],
        "note": [{"text": "Patient/not-a-reference"}],
        "contained": [{"reference": 7}],
        "careTeam": [{"reference": "CareTeam/c1"}],
    }
    assert list(iter_references(resource)) == [
        "Patient/p",
        "ServiceRequest/s1",
        "Task/t1",
        "Goal/g1",
        "CareTeam/c1",
    ]
