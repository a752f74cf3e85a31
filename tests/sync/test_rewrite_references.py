"""Rewriting references to the ids a server gave: what holds none of them is shared, never changed."""

from __future__ import annotations

import copy

from fhir_cm.sync._identity import rewrite_references


def test_rewriting_copies_what_it_changes_and_leaves_its_input_alone() -> None:
    resource = {
        "resourceType": "Goal",
        "subject": {"reference": "Patient/p1", "display": "kept"},
        "addresses": [{"reference": "Condition/c1"}, {"reference": "Condition/c2"}],
        "note": [{"text": "no reference here"}],
    }
    before = copy.deepcopy(resource)
    out = rewrite_references(resource, {"Patient/p1": "Patient/901", "Condition/c2": "Condition/902"})
    assert resource == before
    assert out["subject"] == {"reference": "Patient/901", "display": "kept"}
    assert out["addresses"] == [{"reference": "Condition/c1"}, {"reference": "Condition/902"}]
    assert out["note"] is resource["note"] and out["addresses"][0] is resource["addresses"][0]


def test_nothing_to_rewrite_gives_the_input_itself() -> None:
    resource = {"resourceType": "Goal", "subject": {"reference": "Patient/p1"}}
    assert rewrite_references(resource, {"Patient/p2": "Patient/902"}) is resource
