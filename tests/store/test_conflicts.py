"""Conflicts: one open per resource of a case, resolved by a person, never silently overwritten."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_cm.store import (
    ConflictStatus,
    NotFound,
    Resolution,
    Store,
    add_conflict,
    list_conflicts,
    resolve_conflict,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
LOCAL = {"resourceType": "Goal", "lifecycleStatus": "completed"}
SERVER = {"resourceType": "Goal", "lifecycleStatus": "cancelled"}


def test_a_conflict_is_recorded_and_listed_while_open(store_with_cases: Store) -> None:
    with store_with_cases.session() as s:
        cid = add_conflict(
            s, "case-1", "Goal", "goal-1", local=LOCAL, server=SERVER, fields=["lifecycleStatus"], now=T0
        )
        add_conflict(s, "case-2", "CarePlan", "plan-1", local=None, server=SERVER, fields=["status"], now=T0)
    with store_with_cases.session(read_only=True) as s:
        [conflict] = list_conflicts(s, case_id="case-1")
        assert len(list_conflicts(s)) == 2
    assert (conflict.id, conflict.local, conflict.server, conflict.fields) == (cid, LOCAL, SERVER, ["lifecycleStatus"])
    assert (conflict.status, conflict.resolution, conflict.created_at) == (ConflictStatus.OPEN, None, T0)


def test_a_second_clash_on_the_same_resource_refreshes_the_open_conflict(store_with_cases: Store) -> None:
    newer = SERVER | {"description": {"text": "changed"}}
    with store_with_cases.session() as s:
        first = add_conflict(
            s, "case-1", "Goal", "goal-1", local=LOCAL, server=SERVER, fields=["lifecycleStatus"], now=T0
        )
        again = add_conflict(
            s, "case-1", "Goal", "goal-1", local=LOCAL, server=newer, fields=["lifecycleStatus", "description"]
        )
        [only] = list_conflicts(s)
    assert again == first
    assert (only.server, only.fields, only.created_at) == (newer, ["lifecycleStatus", "description"], T0)


def test_resolving_closes_it_and_a_later_clash_opens_a_new_one(store_with_cases: Store) -> None:
    with store_with_cases.session() as s:
        cid = add_conflict(s, "case-1", "Goal", "goal-1", local=LOCAL, server=SERVER, fields=["lifecycleStatus"])
        resolved = resolve_conflict(s, cid, Resolution.SERVER, resolved_by="cm-1", now=T0)
        assert (resolved.status, resolved.resolution, resolved.resolved_by, resolved.resolved_at) == (
            ConflictStatus.RESOLVED,
            Resolution.SERVER,
            "cm-1",
            T0,
        )
        assert list_conflicts(s) == []
        assert [c.id for c in list_conflicts(s, status=ConflictStatus.RESOLVED)] == [cid]
        with pytest.raises(NotFound):
            resolve_conflict(s, cid, Resolution.LOCAL)
        with pytest.raises(NotFound):
            resolve_conflict(s, 9999, Resolution.LOCAL)
        reopened = add_conflict(s, "case-1", "Goal", "goal-1", local=LOCAL, server=SERVER, fields=["lifecycleStatus"])
        assert reopened != cid
        assert [c.status for c in list_conflicts(s, status=None)] == [ConflictStatus.RESOLVED, ConflictStatus.OPEN]
