"""Decoded cases kept by revision for readers, on SQLite and PostgreSQL: never stale, never unbounded.

The API's read routes decode a case only when the one kept is not at the stored revision. What must
hold: a save (here, or by another process straight to the database) makes the kept case unused at
once; a page of cases comes back in the store's order whatever was kept; the bound holds; a slow
reader cannot put an older revision back over a newer one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, update

from fhir_cm.domain import Case, CaseStatus, ProgrammeType
from fhir_cm.store import (
    CaseCache,
    Store,
    get_case_record,
    get_case_records,
    list_case_records,
    save_case,
    save_case_record,
    warm_case_cache,
)
from fhir_cm.store._tables import CaseRow


def _saved(store: Store, *cases: Case) -> None:
    with store.session() as s:
        for case in cases:
            save_case(s, case)


def test_a_kept_case_is_served_until_it_is_saved_again(store: Store, make_case: Callable[..., Case]) -> None:
    cache = CaseCache(10)
    _saved(store, make_case("case-1", plan_summary="first"))
    with store.session(read_only=True) as s:
        first = get_case_record(s, "case-1", cache=cache)
        again = get_case_record(s, "case-1", cache=cache)
    assert first is not None and again is not None
    assert again.case is first.case  # not decoded twice
    _saved(store, make_case("case-1", plan_summary="second"))
    with store.session(read_only=True) as s:
        after = get_case_record(s, "case-1", cache=cache)
        uncached = get_case_record(s, "case-1")
    assert after is not None and uncached is not None
    assert (after.case.plan_summary, after.revision) == ("second", 2)
    assert after == uncached


def test_each_read_of_a_kept_case_has_its_own_map_of_dates_as_written(
    store: Store, make_case: Callable[..., Case]
) -> None:
    """A record read through the cache is built without validating the kept case again, and gets a copy
    of the kept map of dates as written: a reader changing its record's map changes no other's."""
    cache = CaseCache(10)
    with store.session() as s:
        save_case(s, make_case("case-1"), written={"/period/start": "2025-05"})
    with store.session(read_only=True) as s:
        first = get_case_record(s, "case-1", cache=cache)
        again = get_case_record(s, "case-1", cache=cache)
    assert first is not None and again is not None
    assert again.case is first.case and again == first
    assert again.dates_as_written == {"/period/start": "2025-05"}
    again.dates_as_written["/period/start"] = "changed by a reader"  # a record from the cache
    with store.session(read_only=True) as s:
        later = get_case_record(s, "case-1", cache=cache)
    assert later is not None and later.case is first.case
    assert first.dates_as_written == later.dates_as_written == {"/period/start": "2025-05"}


def test_a_change_written_by_another_process_is_seen(store: Store, make_case: Callable[..., Case]) -> None:
    """Another worker's save reaches the database, not this cache: the revision read first decides."""
    cache = CaseCache(10)
    _saved(store, make_case("case-1", plan_summary="first"))
    with store.session(read_only=True) as s:
        get_case_record(s, "case-1", cache=cache)
    changed = make_case("case-1", plan_summary="elsewhere").model_dump(mode="json")
    with store.session() as s:
        s.execute(update(CaseRow).where(CaseRow.case_id == "case-1").values(data=changed, revision=7))
    with store.session(read_only=True) as s:
        record = get_case_record(s, "case-1", cache=cache)
    assert record is not None and (record.case.plan_summary, record.revision) == ("elsewhere", 7)


def test_a_page_keeps_the_store_order_with_some_cases_kept(store: Store, make_case: Callable[..., Case]) -> None:
    cache = CaseCache(10)
    _saved(store, *(make_case(f"case-{i}") for i in range(1, 7)))
    with store.session(read_only=True) as s:
        get_case_record(s, "case-2", cache=cache)
        get_case_record(s, "case-5", cache=cache)
        page = list_case_records(s, limit=4, offset=1, cache=cache)
        plain = list_case_records(s, limit=4, offset=1)
        missing = get_case_record(s, "case-9", cache=cache)
    assert [r.case.id for r in page] == ["case-2", "case-3", "case-4", "case-5"]
    assert page == plain
    assert missing is None


def test_a_full_cache_takes_in_no_new_case_but_keeps_newer_revisions(make_case: Callable[..., Case]) -> None:
    """Reads spread over more cases than it holds must not churn it: a full cache only replaces."""
    cache = CaseCache(2)
    a, b, c = (make_case(f"case-{i}") for i in "abc")
    cache.put("a", 1, a)
    cache.put("b", 1, b)
    cache.put("c", 1, c)
    assert (len(cache), cache.get("a", 1), cache.get("b", 1), cache.get("c", 1)) == (2, a, b, None)
    a2 = make_case("case-a", plan_summary="saved again")
    cache.put("a", 2, a2)
    assert (len(cache), cache.get("a", 1), cache.get("a", 2)) == (2, None, a2)


def test_an_older_revision_never_replaces_a_newer_one(make_case: Callable[..., Case]) -> None:
    cache = CaseCache(5)
    newer, older = make_case("case-1", plan_summary="new"), make_case("case-1", plan_summary="old")
    cache.put("case-1", 3, newer)
    cache.put("case-1", 2, older)
    assert (cache.get("case-1", 3), cache.get("case-1", 2)) == (newer, None)


def test_a_cache_of_size_zero_keeps_nothing(store: Store, make_case: Callable[..., Case]) -> None:
    cache = CaseCache(0)
    _saved(store, make_case("case-1"))
    with store.session(read_only=True) as s:
        record = get_case_record(s, "case-1", cache=cache)
        assert warm_case_cache(s, cache, [CaseStatus.ACTIVE]) == 0
    assert record is not None and len(cache) == 0


def test_warming_keeps_the_open_cases_most_recently_saved(store: Store, make_case: Callable[..., Case]) -> None:
    _saved(store, make_case("old", programme=ProgrammeType.HEALTH_CARE))
    _saved(store, make_case("closed", status=CaseStatus.CLOSED, period={"start": "2026-01-01", "end": "2026-02-01"}))
    _saved(store, make_case("new"))
    cache = CaseCache(1)
    with store.session(read_only=True) as s:
        assert warm_case_cache(s, cache, [CaseStatus.ACTIVE]) == 1
    assert cache.get("new", 1) is not None and cache.get("old", 1) is None and cache.get("closed", 1) is None


def test_warming_again_with_other_statuses_fills_only_the_room_left(
    store: Store, make_case: Callable[..., Case]
) -> None:
    """The start-up's second pass (the cases not open: a day's caseload reads them too) takes only the
    room the open ones left, newest first."""
    _saved(store, make_case("open"))
    _saved(store, make_case("closed-1", status=CaseStatus.CLOSED, period={"start": "2026-01-01", "end": "2026-02-01"}))
    _saved(store, make_case("closed-2", status=CaseStatus.CLOSED, period={"start": "2026-01-01", "end": "2026-02-01"}))
    cache = CaseCache(2)
    with store.session(read_only=True) as s:
        assert warm_case_cache(s, cache, [CaseStatus.ACTIVE]) == 1
        assert warm_case_cache(s, cache, [CaseStatus.CLOSED]) == 1
        assert warm_case_cache(s, cache, [CaseStatus.CLOSED]) == 0
    assert cache.get("open", 1) is not None and cache.get("closed-2", 1) is not None
    assert cache.get("closed-1", 1) is None


def test_a_saved_record_is_the_record_a_read_right_after_gives(store: Store, make_case: Callable[..., Case]) -> None:
    """``save_case_record`` returns the case as stored without reading it back: new, changed, unchanged
    (the stored revision and times kept), and with the dates as written carried along."""
    with store.session() as s:
        save_case(s, make_case("case-1", plan_summary="first"), written={"/period/start": "2024-03"})
    for plan in ("second", "second", "third"):  # a change, the same again (nothing saved), another change
        with store.session() as s:
            saved = save_case_record(s, make_case("case-1", plan_summary=plan))
        with store.session() as s:
            made = save_case_record(s, make_case(f"case-{plan}"), expected_revision=0) if plan != "second" else None
        with store.session(read_only=True) as s:
            assert saved == get_case_record(s, "case-1")
            assert made is None or made == get_case_record(s, f"case-{plan}")
    assert (saved.revision, saved.case.plan_summary, saved.dates_as_written) == (
        3,
        "third",
        {"/period/start": "2024-03"},
    )


def _statements(store: Store) -> list[tuple[str, Any]]:
    """The statements run on ``store`` from now on over its tables, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        if "FROM" in statement:
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", note)
    return seen


def test_a_case_kept_at_the_revision_a_reader_read_is_not_asked_for_again(
    store: Store, make_case: Callable[..., Case]
) -> None:
    """A view catching up knows each changed case's revision (read a statement before, in its snapshot):
    a case kept at that revision, with its times, comes from the cache without a statement; one kept at
    another revision, or kept without its times, is read and kept."""
    _saved(store, make_case("case-1"), make_case("case-2"), make_case("case-3"))
    cache = CaseCache(10)
    with store.session(read_only=True) as s:
        plain = {c: get_case_record(s, c) for c in ("case-1", "case-2", "case-3")}
        get_case_records(s, ["case-1"], cache=cache)  # kept, with its times
    cache.put("case-3", 1, make_case("case-3"))  # kept without them
    _saved(store, make_case("case-2", plan_summary="changed"))
    with store.session(read_only=True) as s:
        statements = _statements(store)
        revisions = {"case-1": 1, "case-2": 2, "case-3": 1}
        records = get_case_records(s, list(revisions), cache=cache, revisions=revisions)
        asked = list(statements)
        changed = get_case_record(s, "case-2")
    # One statement, reading case-2 and case-3 whole; no revision looked up again.
    assert [("cases.data" in text, len(parameters)) for text, parameters in asked] == [(True, 2)]
    assert records == {"case-1": plain["case-1"], "case-2": changed, "case-3": plain["case-3"]}
    assert records["case-1"].case is cache.get("case-1", 1)
    assert (cache.get_kept("case-2", 2), cache.get_kept("case-3", 1)) == (
        (changed.case, {}, changed.created_at, changed.updated_at),
        (plain["case-3"].case, {}, plain["case-3"].created_at, plain["case-3"].updated_at),
    )
