"""Contact ⇄ Communication: medium, sent date, the note as payload (R4 string, R5 concept text)."""

from __future__ import annotations

import pytest

from fhir_cm.mapping import References, ResourceKey, case_to_resources
from tests.mapping.builders import SYSTEM, full_case

CONTACT = ResourceKey("Communication", "contact-1")


@pytest.mark.parametrize(
    ("version", "payload"),
    [
        ("R4", {"contentString": "Home visit went well"}),
        ("R5", {"contentCodeableConcept": {"text": "Home visit went well"}}),
    ],
)
def test_a_contact_is_a_completed_communication_about_the_case(version: str, payload: dict) -> None:
    resources = case_to_resources(full_case(), version, SYSTEM)
    comm = resources[CONTACT]
    assert comm["status"] == "completed"
    assert ("http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", "FACE") in {
        (c["system"], c["code"]) for c in comm["medium"][0]["coding"]
    }
    assert comm["sent"] == "2024-01-08"
    assert comm["payload"] == [payload]
    assert comm["subject"]["reference"] == "Patient/pat-1"
    episode = References(SYSTEM).full_url(ResourceKey("EpisodeOfCare", "case-1"))
    assert comm["partOf"] == [{"reference": episode}]


def test_a_contact_without_a_note_has_no_payload() -> None:
    case = full_case()
    case = case.model_copy(update={"contacts": [case.contacts[0].model_copy(update={"note": None})]})
    assert "payload" not in case_to_resources(case, "R4", SYSTEM)[CONTACT]
