"""Quarantine: what could not be parsed or mapped is set aside as received, with the reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from fhir_cm.store import open_store, Store, add_quarantine, clear_quarantine, list_quarantine, settle_quarantine

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
    assert [q.id for q in everything] == [second.id, first.id]
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
            add_quarantine(s, source=HAPI, raw=f"x{n}", reason="r" * 5000, now=T0 + dt.timedelta(seconds=n))
    with store.session(read_only=True) as s:
        listed = list_quarantine(s, limit=2)
    assert len(listed) == 2
    assert {len(q.reason) for q in listed} == {1000}


def goal(version: str | None, status: str = "cancelled") -> dict[str, object]:
    meta = {"meta": {"versionId": version}} if version else {}
    return {"resourceType": "Goal", "id": "77", **meta, "lifecycleStatus": status}


def test_a_resource_read_again_refreshes_its_one_entry(store: Store) -> None:
    with store.session() as s:
        first = add_quarantine(s, source=HAPI, raw=goal("3"), reason="old rule", now=T0)
        again = add_quarantine(s, source=HAPI, raw=goal("3"), reason="new rule", now=T0 + dt.timedelta(minutes=1))
        elsewhere = add_quarantine(s, source="http://other/fhir", raw=goal("3"), reason="r", now=T0)
    with store.session(read_only=True) as s:
        (entry,) = list_quarantine(s, source=HAPI)
    assert first.id == again.id == entry.id != elsewhere.id
    assert (first.news, again.news, elsewhere.news) == (True, False, True)
    assert (entry.version, entry.reason, entry.received_at, entry.last_seen_at) == (
        "3",
        "new rule",
        T0,
        T0 + dt.timedelta(minutes=1),
    )


def test_a_new_version_replaces_the_entry_and_an_older_one_read_late_does_not(store: Store) -> None:
    later = T0 + dt.timedelta(hours=1)
    with store.session() as s:
        added = add_quarantine(s, source=HAPI, raw=goal("3"), reason="r3", now=T0)
        replaced = add_quarantine(s, source=HAPI, raw=goal("10", "rejected"), reason="r10", now=later)
        late = add_quarantine(s, source=HAPI, raw=goal("9"), reason="r9", now=later + dt.timedelta(hours=1))
    assert (added.news, replaced.news, late.news) == (True, True, False)
    with store.session(read_only=True) as s:
        (entry,) = list_quarantine(s)
    assert (entry.version, entry.reason, entry.received_at, entry.last_seen_at) == ("10", "r10", later, later)
    assert '"rejected"' in entry.raw


def test_without_versions_the_content_tells_copies_apart(store: Store) -> None:
    with store.session() as s:
        add_quarantine(s, source=HAPI, raw=goal(None), reason="r", now=T0)
        add_quarantine(s, source=HAPI, raw=goal(None), reason="r", now=T0 + dt.timedelta(seconds=5))
        (same,) = list_quarantine(s)
        add_quarantine(s, source=HAPI, raw=goal(None, "rejected"), reason="r", now=T0 + dt.timedelta(seconds=9))
        (changed,) = list_quarantine(s)
        # Without an id, the text is what it is known by: the same text once, another text apart.
        for n in (1, 1, 2):
            add_quarantine(s, source=HAPI, raw={"resourceType": "Goal", "note": n}, reason="no id", now=T0)
        idless = [q for q in list_quarantine(s) if q.server_id is None]
    assert same.received_at == T0 and same.version.startswith("sha256:")
    assert changed.version != same.version and changed.received_at == T0 + dt.timedelta(seconds=9)
    assert len(idless) == 2


def test_a_copy_taken_in_clears_only_its_own_entry(store: Store) -> None:
    with store.session() as s:
        add_quarantine(s, source=HAPI, raw=goal("3"), reason="r", now=T0)
        add_quarantine(s, source=HAPI, raw={**goal("1"), "id": "78"}, reason="r", now=T0)
        add_quarantine(s, source="http://other/fhir", raw=goal("3"), reason="r", now=T0)
        assert clear_quarantine(s, HAPI, [("Goal", "77"), ("CarePlan", "78")]) == 1
        left = {(q.source, q.server_id) for q in list_quarantine(s)}
    assert left == {(HAPI, "78"), ("http://other/fhir", "77")}


def test_a_resource_read_fine_settles_only_an_entry_of_another_version(store: Store) -> None:
    with store.session() as s:
        add_quarantine(s, source=HAPI, raw=goal("3"), reason="r", now=T0)
        add_quarantine(s, source=HAPI, raw={**goal("1"), "id": "78"}, reason="r", now=T0)
        add_quarantine(s, source="http://other/fhir", raw=goal("3"), reason="r", now=T0)
        gone = settle_quarantine(s, HAPI, [goal("4"), {**goal("1"), "id": "78"}, goal("9") | {"id": "79"}])
        left = {(q.source, q.server_id) for q in list_quarantine(s)}
    assert gone == 1  # Goal/77 is at version 4 now; Goal/78 is still the version set aside
    assert left == {(HAPI, "78"), ("http://other/fhir", "77")}


@pytest.mark.postgres
def test_an_entry_cleared_while_it_is_read_again_is_added_again(pg_store_url: str) -> None:
    """Another worker's pull takes a copy in and clears the entry between this one's two statements:
    the entry comes back rather than the pull failing with NoResultFound."""
    with open_store(pg_store_url) as store:
        with store.session() as s:
            add_quarantine(s, source=HAPI, raw=goal("3"), reason="r", now=T0)
        cleared: list[int] = []

        def other_worker_clears(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().startswith("SELECT quarantine.id") and not cleared:
                with store.engine.connect() as other, other.begin():
                    cleared.append(clear_quarantine(Session(other), HAPI, [("Goal", "77")]))

        event.listen(store.engine, "before_cursor_execute", other_worker_clears)
        try:
            with store.session() as s:
                again = add_quarantine(s, source=HAPI, raw=goal("3"), reason="r", now=T0 + dt.timedelta(minutes=1))
        finally:
            event.remove(store.engine, "before_cursor_execute", other_worker_clears)
        with store.session(read_only=True) as s:
            (entry,) = list_quarantine(s)
    assert cleared == [1]
    assert (again.id, again.news) == (entry.id, True) and entry.received_at == T0 + dt.timedelta(minutes=1)
