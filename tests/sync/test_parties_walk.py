"""The parties of a case are found by walking only the fields whose type can hold a model: the same
parties, in the same order, as walking every field of every model of the case."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from fhir_cm.domain import Party
from fhir_cm.sync import _parties
from fhir_cm.sync._parties import case_parties
from fhir_cm.synthetic import generate_cases
from tests.mapping.builders import full_case


def every_party(node: Any) -> Iterator[Party]:
    if isinstance(node, Party):
        yield node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from every_party(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from every_party(item)


def test_the_parties_are_those_a_walk_of_every_field_finds() -> None:
    cases = [full_case(), *generate_cases(200, seed=11)]
    named = 0
    for case in cases:
        assert list(_parties._walk(case)) == list(every_party(case))
        named += len(case_parties(case))
    assert named > len(cases)  # the cases name parties: the comparison is not of empty walks
