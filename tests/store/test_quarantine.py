"""Quarantine: what could not be parsed or mapped is set aside as received, with the reason."""

from __future__ import annotations

import datetime as dt

from fhir_cm.store import Store, add_quarantine, list_quarantine

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
HAPI = "http://hapi.example/fhir"


def test_set_aside_resources_are_listed_newest_first_with_filters(store: Store) -> None:
    bad_goal = {"resourceType": "Goal", "id": "77", "lifecycleStatus": 42}
    with store.session() as s:
        first = add_quarantine(s, source=HAPI, raw=bad_goal, reason="Goal.lifecycleStatus: not a code", now=T0)
        second = add_quarantine(
            s,
            source="import:bundle.json",
            raw=b'{"resourceType": "CarePlan", oops',
            reason="invalid JSON",
            resource_type="CarePlan",
            now=T0 + dt.timedelta(seconds=1),
        )
    with store.session(read_only=True) as s:
        everything = list_quarantine(s)
        from_hapi = list_quarantine(s, source=HAPI)
        careplans = list_quarantine(s, resource_type="CarePlan")
    assert [q.id for q in everything] == [second, first]
    [goal] = from_hapi
    assert (goal.resource_type, goal.server_id, goal.reason, goal.received_at) == (
        "Goal",
        "77",
        "Goal.lifecycleStatus: not a code",
        T0,
    )
    assert goal.raw == '{"resourceType":"Goal","id":"77","lifecycleStatus":42}'
    assert [(q.raw, q.server_id) for q in careplans] == [('{"resourceType": "CarePlan", oops', None)]


def test_long_reasons_are_cut_and_limit_applies(store: Store) -> None:
    with store.session() as s:
        for n in range(3):
            add_quarantine(s, source=HAPI, raw="x", reason="r" * 5000, now=T0 + dt.timedelta(seconds=n))
    with store.session(read_only=True) as s:
        listed = list_quarantine(s, limit=2)
    assert len(listed) == 2
    assert {len(q.reason) for q in listed} == {1000}
