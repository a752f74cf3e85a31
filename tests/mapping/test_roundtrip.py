"""Domain → FHIR → domain is the identity, for R4 and R5, and what comes out is valid US Core FHIR."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fhir_cm.domain import Case
from fhir_cm.mapping import case_to_bundle, case_to_resources, resources_to_case
from tests.mapping.fhir_check import us_core_problems, validate_bundle
from tests.strategies import cases

SYSTEM = "urn:fhir-cm:test"


@pytest.mark.parametrize("version", ["R4", "R5"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_case_survives_the_round_trip(version: str, case: Case) -> None:
    resources = case_to_resources(case, version, SYSTEM)
    # Nothing written here is absolute at a base of our own: every absolute reference is an outside party.
    assert resources_to_case(resources.values(), version, SYSTEM, bases=()) == case
    # The same, read back from the transaction Bundle (urn:uuid references resolved through fullUrls).
    assert resources_to_case([case_to_bundle(case, version, SYSTEM)], version, SYSTEM, bases=()) == case
    # Updating the resources from the case they came from changes nothing at all.
    assert case_to_resources(case, version, SYSTEM, resources, bases=()) == resources


@pytest.mark.parametrize("version", ["R4", "R5"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_bundles_validate_and_meet_us_core(version: str, case: Case) -> None:
    bundle = case_to_bundle(case, version, SYSTEM)
    validate_bundle(bundle, version)
    assert us_core_problems(bundle, SYSTEM, version) == []
