"""FHIR resources of a case: kept as they came, so an export can give them back unchanged."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from fhir_cm.store import (
    Store,
    StoreError,
    content_hash,
    find_by_identifier,
    get_resource,
    get_resources,
    put_resources,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

GOAL: dict[str, Any] = {
    "resourceType": "Goal",
    "id": "g1",
    "meta": {"versionId": "3", "lastUpdated": "2024-04-01T10:00:00.123+02:00"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Walk ✓ 200 m</div>'},
    "extension": [{"url": "http://example.org/unknown", "valueDecimal": 1.25}],
    "identifier": [{"system": "urn:fhir-cm:id", "value": "goal-1"}],
    "lifecycleStatus": "active",
    "description": {"text": "Walk 200 m"},
    "subject": {"reference": "Patient/p1"},
    "target": [{"dueDate": "2024-06-01", "detailQuantity": {"value": 200, "unit": "m"}}],
    "_lifecycleStatus": {"extension": [{"url": "http://example.org/x", "valueBoolean": True}]},
}
CAREPLAN: dict[str, Any] = {
    "resourceType": "CarePlan",
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
}


def test_a_resource_reads_back_exactly_as_it_was_put(store_with_cases: Store) -> None:
    with store_with_cases.session() as s:
        assert (
            put_resources(s, "case-1", [("goal-1", GOAL)], fhir_version="R5", source="https://fhir.example/r5", now=NOW)
            == 1
        )
    with store_with_cases.session(read_only=True) as s:
        [stored] = get_resources(s, "case-1")
    assert stored.raw == GOAL
    assert (stored.resource_type, stored.key, stored.case_id, stored.fhir_version) == ("Goal", "goal-1", "case-1", "R5")
    assert (stored.source, stored.updated_at, stored.content_hash) == (
        "https://fhir.example/r5",
        NOW,
        content_hash(GOAL),
    )


def test_putting_again_replaces_the_copy(store_with_cases: Store) -> None:
    changed = GOAL | {"lifecycleStatus": "completed"}
    with store_with_cases.session() as s:
        put_resources(s, "case-1", [("goal-1", GOAL)], fhir_version="R4")
        put_resources(s, "case-1", [("goal-1", changed)], fhir_version="R5")
    with store_with_cases.session(read_only=True) as s:
        stored = get_resource(s, "Goal", "goal-1")
    assert stored is not None
    assert (stored.raw, stored.fhir_version, stored.content_hash) == (changed, "R5", content_hash(changed))


def test_a_content_hash_the_caller_has_is_stored_as_given_for_its_type_and_key_only(store_with_cases: Store) -> None:
    known = "0" * 64  # not recomputed: what the caller says (it hashed that copy already)
    with store_with_cases.session() as s:
        put_resources(
            s, "case-1", [("same", GOAL), ("same", CAREPLAN)], fhir_version="R4", hashes={("Goal", "same"): known}
        )
    with store_with_cases.session(read_only=True) as s:
        stored = {r.resource_type: r.content_hash for r in get_resources(s, "case-1")}
    assert stored == {"Goal": known, "CarePlan": content_hash(CAREPLAN)}  # not the Goal's for the CarePlan


def test_keys_are_scoped_by_resource_type_and_listed_per_case(store_with_cases: Store) -> None:
    with store_with_cases.session() as s:
        put_resources(s, "case-1", [("same", GOAL), ("same", CAREPLAN)], fhir_version="R4")
        put_resources(s, "case-2", [("other", CAREPLAN)], fhir_version="R4")
    with store_with_cases.session(read_only=True) as s:
        assert [(r.resource_type, r.key) for r in get_resources(s, "case-1")] == [
            ("CarePlan", "same"),
            ("Goal", "same"),
        ]
        assert [r.key for r in get_resources(s, "case-1", "CarePlan")] == ["same"]
        assert [r.key for r in get_resources(s, "case-2")] == ["other"]
        assert get_resource(s, "Goal", "other") is None


def test_a_resource_needs_a_type_and_an_existing_case(store_with_cases: Store) -> None:
    with pytest.raises(ValueError, match="no resourceType"), store_with_cases.session() as s:
        put_resources(s, "case-1", [("k", {"status": "active"})], fhir_version="R4")
    with pytest.raises(StoreError), store_with_cases.session() as s:
        put_resources(s, "no-such-case", [("k", CAREPLAN)], fhir_version="R4")
    with store_with_cases.session() as s:
        assert put_resources(s, "case-1", [], fhir_version="R4") == 0


def test_content_hash_ignores_what_servers_restamp_and_nothing_else() -> None:
    restamped = GOAL | {"id": "server-42", "meta": {"versionId": "9"}}
    reordered = dict(reversed(list(GOAL.items())))
    assert content_hash(restamped) == content_hash(reordered) == content_hash(GOAL)
    deep = copy.deepcopy(GOAL)
    deep["target"][0]["detailQuantity"]["value"] = 201
    assert content_hash(deep) != content_hash(GOAL)
    assert content_hash(GOAL | {"text": {"status": "empty"}}) != content_hash(GOAL)


def test_a_decimal_reads_back_with_the_precision_it_was_written_with(store_with_cases: Store) -> None:
    """FHIR decimals keep their precision (1.50 is not 1.5): what the store holds gives back the text
    the server sent, on SQLite and PostgreSQL alike."""
    from fhir_cm import decimals

    sent = b'{"resourceType":"Goal","id":"g2","target":[{"detailQuantity":{"value":1.50,"unit":"mmol/L"}}],'
    sent += b'"extension":[{"url":"http://example.org/x","valueDecimal":1.000E+2}],"lifecycleStatus":"active"}'
    with store_with_cases.session() as s:
        put_resources(s, "case-1", [("goal-2", decimals.loads(sent))], fhir_version="R4", source="x", now=NOW)
    with store_with_cases.session(read_only=True) as s:
        stored = get_resource(s, "Goal", "goal-2")
    assert stored is not None
    assert decimals.dumps(stored.raw) == sent


def test_a_resource_is_found_by_an_identifier_it_holds_and_only_by_that(store_with_cases: Store) -> None:
    mrn = "http://hospital.example.org/mrn"
    patients = [
        ("p1", {"resourceType": "Patient", "id": "p1", "identifier": [{"system": mrn, "value": "M_1%"}]}),
        ("p2", {"resourceType": "Patient", "id": "p2", "identifier": [{"system": mrn, "value": "M-12"}]}),
        ("p3", {"resourceType": "Patient", "id": "p3", "identifier": [{"system": "urn:other", "value": "M_1%"}]}),
    ]
    with store_with_cases.session() as s:
        put_resources(s, "case-1", patients, fhir_version="R4")
    with store_with_cases.session(read_only=True) as s:
        assert [p.key for p in find_by_identifier(s, "Patient", mrn, "M_1%")] == ["p1"]  # no LIKE wildcards
        assert [p.key for p in find_by_identifier(s, "Patient", mrn, "M-1")] == []  # the whole value
        assert find_by_identifier(s, "Goal", mrn, "M_1%") == []
