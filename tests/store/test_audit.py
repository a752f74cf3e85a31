"""The audit log: one row per case touched, newest first, filtered by case, principal and time."""

from __future__ import annotations

import datetime as dt

from fhir_cm.store import Store, list_audit, record_audit

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def test_rows_per_case_newest_first(store: Store) -> None:
    with store.session() as s:
        assert record_audit(s, principal="k1", action="list", case_ids=["a", "b", "a"], now=T0) == 2
        record_audit(
            s,
            principal="k2",
            action="update",
            case_ids=["a"],
            detail="goals:g1",
            request_id="r1",
            now=T0 + dt.timedelta(minutes=1),
        )
    with store.session() as s:
        rows = list_audit(s, case_id="a")
        assert [(r.principal, r.action, r.detail, r.request_id) for r in rows] == [
            ("k2", "update", "goals:g1", "r1"),
            ("k1", "list", None, None),
        ]
        assert rows[0].at == T0 + dt.timedelta(minutes=1)
        assert [r.case_id for r in list_audit(s, principal="k1")] == ["b", "a"]
        assert [r.action for r in list_audit(s, since=T0 + dt.timedelta(seconds=30))] == ["update"]
        assert len(list_audit(s, limit=1)) == 1


def test_an_access_without_a_case_is_one_row(store: Store) -> None:
    with store.session() as s:
        record_audit(s, principal="k1", action="outcomes", case_ids=[None], now=T0)
        record_audit(s, principal="k1", action="nothing", case_ids=[], now=T0)
    with store.session() as s:
        assert [(r.action, r.case_id) for r in list_audit(s)] == [("outcomes", None)]


def test_long_details_are_cut(store: Store) -> None:
    with store.session() as s:
        record_audit(s, principal="k1", action="update", case_ids=["a"], detail="x" * 500, now=T0)
    with store.session() as s:
        assert len(list_audit(s)[0].detail or "") == 200
