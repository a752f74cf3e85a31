"""The audit log: one row per case touched, newest first, filtered by case, principal and time."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_cm.store import Store, StoreError, list_audit, open_store, record_audit
from fhir_cm.store._audit import COPY_FROM

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


def test_a_large_group_is_stored_as_a_small_one_is(store: Store) -> None:
    """On PostgreSQL a group from ``COPY_FROM`` rows on goes by ``COPY``, a single row by ``INSERT``: read
    back, its rows are what an ``INSERT`` stores — the same instant in UTC, a long detail cut, a NUL in text replaced, and the
    characters COPY's text gives a meaning (a backslash, a tab, a line's end, ``\\N`` for none) kept as
    they were; a row of no case has none."""
    at = dt.datetime(2025, 3, 1, 10, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    odd = "tab\there\\N\nline\r\\."
    ids = [f"case-{n:04}" for n in range(COPY_FROM)] + [odd, "\\N"]
    detail = "x\x00\t\\" + "y" * 300
    principal = "k\x00\\N\n"
    with store.session() as s:
        for case_ids in ([*ids, None], ["small"]):
            record_audit(
                s, principal=principal, action="list", case_ids=case_ids, detail=detail, request_id="r\t1", now=at
            )
    with store.session(read_only=True) as s:
        rows = list_audit(s, limit=None)
    assert len(rows) == COPY_FROM + 4
    assert sorted(r.case_id for r in rows if r.case_id not in ("small", None)) == sorted(ids)
    assert [r.case_id for r in rows].count(None) == 1
    small = next(r for r in rows if r.case_id == "small")
    for row in rows:
        assert (row.at, row.principal, row.action, row.detail, row.request_id) == (
            small.at,
            small.principal,
            small.action,
            small.detail,
            small.request_id,
        )
    assert small.at == at and small.principal == "k\ufffd\\N\n" and small.request_id == "r\t1"
    assert small.detail == ("x\ufffd\t\\" + "y" * 300)[:200]


@pytest.mark.postgres
def test_a_large_group_refused_is_a_store_error(pg_store_url: str) -> None:
    """A ``COPY`` the database refuses is reported as an ``INSERT`` is, not as the driver's own error."""
    with open_store(pg_store_url) as store:
        with (
            pytest.raises(StoreError, match=r"refused the operation \(StringDataRightTruncation\)"),
            store.session() as s,
        ):
            record_audit(s, principal="k" * 65, action="list", case_ids=[f"c{n}" for n in range(COPY_FROM)])
        with store.session(read_only=True) as s:
            assert list_audit(s) == []
