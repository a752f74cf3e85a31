"""The entry rule the push and ``case_to_bundle`` share (``mapping.plan_entry``)."""

from __future__ import annotations

from fhir_cm.mapping import ResourceKey, plan_entry, same_content

SYSTEM = "urn:fhir-cm:test"
KEY = ResourceKey("Goal", "g-1")
URN = "urn:uuid:00000000-0000-5000-8000-000000000001"


def goal(**extra: object) -> dict[str, object]:
    return {"resourceType": "Goal", "lifecycleStatus": "active", **extra}


def test_a_new_resource_is_a_conditional_create_without_its_id() -> None:
    planned = plan_entry(KEY, goal(id="local"), SYSTEM, URN)
    assert planned is not None
    assert (planned.method, planned.url, planned.kind) == ("POST", "Goal", "create")
    assert planned.if_none_exist == "identifier=urn:fhir-cm:test|g-1" and planned.if_match is None
    assert "id" not in planned.resource
    assert planned.as_fhir()["fullUrl"] == URN


def test_a_resource_for_a_server_without_identifier_search_is_put_at_its_stable_id() -> None:
    planned = plan_entry(KEY, goal(), SYSTEM, URN, server_id="stable-1")
    assert planned is not None
    assert (planned.method, planned.url, planned.kind, planned.if_match, planned.if_none_exist) == (
        "PUT",
        "Goal/stable-1",
        "create",
        None,
        None,
    )


def test_a_known_resource_is_updated_at_its_server_id_with_if_match() -> None:
    base = goal(id="42", meta={"versionId": "7"})
    planned = plan_entry(KEY, goal(id="42", lifecycleStatus="completed"), SYSTEM, URN, base=base, server_id="x")
    assert planned is not None
    assert (planned.method, planned.url, planned.kind, planned.if_match) == ("PUT", "Goal/42", "update", 'W/"7"')


def test_an_update_that_changes_only_id_or_meta_is_not_sent_unless_asked() -> None:
    base = goal(id="42", meta={"versionId": "7", "lastUpdated": "2026-01-01T00:00:00Z"})
    assert plan_entry(KEY, goal(id="42"), SYSTEM, URN, base=base) is None
    forced = plan_entry(KEY, goal(id="42"), SYSTEM, URN, base=base, include_unchanged=True)
    assert forced is not None and forced.method == "PUT"


def test_same_content_ignores_only_id_and_meta() -> None:
    assert same_content(goal(id="1", meta={"versionId": "1"}), goal(id="2"))
    assert not same_content(goal(), goal(note=[{"text": "x"}]))
    assert not same_content(goal(), goal(lifecycleStatus="completed"))
