"""Parties a server calls by other ids (``case_to_resources(..., parties=)``): the references the
mapping builds to them are the server's, on a build and on an update, and reading a base back
recognises them as the case's parties.

A push used to map with the case's ids and then walk every resource to rewrite them; the mapping
now writes the server's ids itself. What it does not build (an extension's value: the referral
source) stays as the case spells it, for the push to rewrite (``tests/sync/test_parties_server.py``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_cm.domain import Case
from fhir_cm.mapping import ResourceKey, case_to_resources, plan_entry, replace_references
from tests.mapping.builders import AGENCY, PATIENT, SYSTEM, full_case
from tests.strategies import cases

_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def moved_for(case: Case) -> dict[str, str]:
    """The case's patient and the organisation it refers to, as a server that named them itself would."""
    moved = {f"Patient/{case.patient.id}": "Patient/srv-pat"}
    for referral in case.referrals:
        if referral.target is not None and referral.target.kind == "organisation":
            moved[f"Organization/{referral.target.id}"] = f"Organization/srv-{referral.target.id}"
    return moved


def rewritten(resources: dict[ResourceKey, dict[str, Any]], moved: dict[str, str]) -> dict[ResourceKey, Any]:
    """The resources with every reference ``moved`` names pointed at the server's id (the old way)."""
    return {k: replace_references(r, lambda ref: moved.get(ref["reference"])) for k, r in resources.items()}


@pytest.mark.parametrize("version", ["R4", "R5"])
@_SETTINGS
@given(case=cases(), data=st.data())
def test_a_build_names_the_parties_by_the_server_s_ids(version: str, case: Case, data: st.DataObject) -> None:
    case = case.model_copy(update={"referral_source": None})  # an extension's value: see the module
    moved = moved_for(case)

    built = case_to_resources(case, version, SYSTEM, parties=moved)

    assert built == rewritten(case_to_resources(case, version, SYSTEM), moved)
    text = orjson.dumps(list(built.values()))
    assert not any(orjson.dumps(own) in text for own in moved)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_an_update_over_copies_naming_the_server_s_ids_changes_nothing_and_shares_them(version: str) -> None:
    case = full_case(referral_source=None)
    moved = moved_for(case)
    ids = {key: f"srv-{n}" for n, key in enumerate(case_to_resources(case, version, SYSTEM))}
    bases = case_to_resources(case, version, SYSTEM, server_ids=ids, parties=moved)

    updated = case_to_resources(case, version, SYSTEM, bases, parties=moved)

    for key, resource in updated.items():
        assert plan_entry(key, resource, SYSTEM, "urn:uuid:x", base=bases[key]) is None, key
        for name in ("subject", "patient", "for"):
            if name in resource:
                assert resource[name] is bases[key][name], (key, name)  # the base's own, not rewritten


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_performer_the_server_calls_by_another_id_is_recognised_not_added_again(version: str) -> None:
    """The base's performer is the case's agency under the server's id, with a display the server
    added (so not the Reference the mapping would write): the update puts the referral's target in
    its place, under the server's id, and adds no second one."""
    case = full_case()
    moved = {f"Organization/{AGENCY.id}": "Organization/srv-agency", f"Patient/{PATIENT.id}": "Patient/srv-pat"}
    ids = {key: f"srv-{n}" for n, key in enumerate(case_to_resources(case, version, SYSTEM))}
    bases = case_to_resources(case, version, SYSTEM, server_ids=ids, parties=moved)
    key = ResourceKey("ServiceRequest", "ref-1")
    assert bases[key]["performer"] == [{"reference": "Organization/srv-agency"}]
    bases[key] = {**bases[key], "performer": [{"reference": "Organization/srv-agency", "display": "Home Care Co"}]}

    updated = case_to_resources(case, version, SYSTEM, bases, parties=moved)

    [performer] = updated[key]["performer"]
    assert performer["reference"] == "Organization/srv-agency"


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_patient_reference_the_server_dressed_is_read_as_the_case_s_patient_and_left_alone(version: str) -> None:
    """A server may add to a Reference (its ``type``): then it is not the Reference the mapping
    would write, and the update reads it back — as the case's patient, the server's id known — and
    finds the same party there: the server's copy is left as it is, rather than rewritten (an update
    on every push)."""
    case = full_case(referral_source=None)
    moved = moved_for(case)
    ids = {key: f"srv-{n}" for n, key in enumerate(case_to_resources(case, version, SYSTEM))}
    bases = case_to_resources(case, version, SYSTEM, server_ids=ids, parties=moved)
    key = ResourceKey("Goal", "goal-1")
    dressed = {**bases[key]["subject"], "type": "Patient"}
    assert dressed["reference"] == "Patient/srv-pat"
    bases[key] = {**bases[key], "subject": dressed}

    updated = case_to_resources(case, version, SYSTEM, bases, parties=moved)

    assert updated[key]["subject"] is dressed
    assert plan_entry(key, updated[key], SYSTEM, "urn:uuid:x", base=bases[key]) is None
