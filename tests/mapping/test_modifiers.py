"""Where a modifier extension is looked for: everywhere in the resource but its contained resources,
and only as an element (the word in a note's text is no modifier)."""

from __future__ import annotations

from fhir_cm.decimals import loads
from fhir_cm.mapping._modifiers import modifier_problems

NEGATED = {"url": "http://example.org/negated", "valueBoolean": True}


def test_one_deep_in_a_backbone_element_is_found() -> None:
    goal = {"resourceType": "Goal", "target": [{"measure": {"text": "x"}, "modifierExtension": [NEGATED]}]}
    assert modifier_problems(goal) == [
        "Goal.target.modifierExtension (a modifier extension fhir-cm does not understand)"
    ]


def test_one_in_a_contained_resource_is_not_the_resources_own() -> None:
    goal = {"resourceType": "Goal", "contained": [{"resourceType": "Goal", "modifierExtension": [NEGATED]}]}
    assert modifier_problems(goal) == []


def test_the_word_in_a_text_is_no_modifier() -> None:
    goal = {"resourceType": "Goal", "note": [{"text": 'asked what "modifierExtension" means'}]}
    assert modifier_problems(goal) == []


def test_a_resource_with_kept_decimals_is_looked_through() -> None:
    goal = loads(
        b'{"resourceType": "Goal", "target": [{"detailQuantity": {"value": 1.50}, "modifierExtension": [{}]}]}'
    )
    assert modifier_problems(goal) == [
        "Goal.target.modifierExtension (a modifier extension fhir-cm does not understand)"
    ]
