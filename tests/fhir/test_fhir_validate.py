"""Validating with fhir.resources, accepting the ``_valueX`` of an extension that its model refuses."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from fhir_cm.fhir import FhirRelease, model_class, validate

TRANSLATED = {
    "url": "https://hospital.example/note",
    "valueString": "Housing",
    "_valueString": {
        "id": "t1",
        "extension": [{"url": "http://example.org/inner", "valueCode": "fr", "_valueCode": {"id": "c"}}],
    },
}


def goal(*extensions: dict) -> dict:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "x"},
        "subject": {"reference": "Patient/p"},
        "extension": list(extensions),
    }


@pytest.mark.parametrize("release", [FhirRelease.R4, FhirRelease.R5])
def test_an_extension_value_with_its_own_id_and_extensions_is_valid_and_left_as_it_is(release: FhirRelease) -> None:
    resource = goal(TRANSLATED, {"url": "https://hospital.example/plain", "valueBoolean": True})
    before = copy.deepcopy(resource)
    with pytest.raises(ValidationError):
        model_class(release, "Goal").model_validate(resource)  # what the model alone says

    validate(model_class(release, "Goal"), resource)

    assert resource == before


@pytest.mark.parametrize(
    "sibling",
    [{"bogus": 1}, {"extension": [{"valueString": "no url"}]}, "text"],
)
def test_a_value_sibling_that_is_no_element_is_refused(sibling: object) -> None:
    resource = goal({"url": "https://hospital.example/note", "valueString": "x", "_valueString": sibling})
    with pytest.raises(ValidationError):
        validate(model_class(FhirRelease.R4, "Goal"), resource)


def test_a_value_sibling_outside_an_extension_is_still_the_model_s_to_judge() -> None:
    resource = {**goal(), "_valueString": {"id": "x"}}
    with pytest.raises(ValidationError):
        validate(model_class(FhirRelease.R4, "Goal"), resource)


def test_a_resource_that_is_no_json_is_still_walked_and_refused_by_the_model() -> None:
    """The walk is skipped only where the resource's JSON shows no ``"_value``; a value that cannot
    be written out at all says nothing, so the resource is walked and the model has the last word."""
    resource = goal({"url": "https://hospital.example/odd", "valueString": object()})
    with pytest.raises(ValidationError):
        validate(model_class(FhirRelease.R4, "Goal"), resource)


def test_text_that_merely_mentions_value_siblings_is_read_as_any_other() -> None:
    """A note holding the text ``"_valueString`` makes the resource walked; nothing in it is moved."""
    resource = goal({"url": "https://hospital.example/note", "valueString": 'see "_valueString'})
    before = copy.deepcopy(resource)
    validate(model_class(FhirRelease.R4, "Goal"), resource)
    assert resource == before
