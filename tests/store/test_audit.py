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
    """On PostgreSQL a group from ``COPY_FROM`` rows on goes by ``COPY``: read back, its rows are what
    an ``INSERT`` stores — the same instant in UTC, a long detail cut, a NUL in text replaced."""
    at = dt.datetime(2025, 3, 1, 10, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ids = [f"case-{n:04}" for n in range(COPY_FROM)]
    detail = "x\x00" + "y" * 300
    with store.session() as s:
        assert (
            record_audit(s, principal="k\x00", action="list", case_ids=ids, detail=detail, request_id="r", now=at)
            == COPY_FROM
        )
        record_audit(s, principal="k\x00", action="list", case_ids=["small"], detail=detail, request_id="r", now=at)
    with store.session(read_only=True) as s:
        rows = list_audit(s, limit=None)
    assert sorted(r.case_id for r in rows if r.case_id != "small") == ids
    small = next(r for r in rows if r.case_id == "small")
    for row in rows:
        assert (row.at, row.principal, row.action, row.detail, row.request_id) == (
            small.at,
            small.principal,
            small.action,
            small.detail,
            small.request_id,
        )
    assert small.at == at and small.principal == "k\ufffd" and small.detail is not None and len(small.detail) == 200


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
