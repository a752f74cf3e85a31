"""The counters of writes to cases and resources (``store_changes``): what the caseload, outcomes, worklist
and FHIR façade caches ask each request instead of counting every case and resource; and each case's
place in the order of commits (``case_changes``), so that the façade reads only the stamps that moved."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import delete, text

from fhir_cm.domain import CaseStatus
from fhir_cm.store import (
    CaseStamp,
    Store,
    case_stamps,
    case_stamps_since,
    cases_version,
    changes_seen,
    open_store,
    put_resources,
    record_audit,
    save_case,
    store_version,
)
from fhir_cm.store._tables import StoreChangeRow
from fhir_cm.synthetic import generate_cases
from tests.store.concurrency import run_together


def _versions(store: Store) -> tuple[int, tuple[int, int]]:
    with store.session(read_only=True) as s:
        return cases_version(s), store_version(s)


def test_each_write_of_a_case_or_resource_changes_its_version_and_nothing_else_does(store: Store) -> None:
    case = next(iter(generate_cases(1, seed=7)))
    start = _versions(store)
    with store.session() as s:
        save_case(s, case)
    created = _versions(store)
    assert created[0] != start[0] and created[1][0] != start[1][0] and created[1][1] == start[1][1]

    with store.session() as s:
        save_case(s, case)  # the same case again: nothing written
        record_audit(s, principal="k", action="read", case_ids=[case.id])
    assert _versions(store) == created

    with store.session() as s:
        other = CaseStatus.ON_HOLD if case.status is not CaseStatus.ON_HOLD else CaseStatus.ACTIVE
        save_case(s, case.model_copy(update={"status": other}))
    saved = _versions(store)
    assert saved[0] != created[0] and saved[1][1] == created[1][1]

    with store.session() as s:
        put_resources(s, case.id, [("k1", {"resourceType": "Goal", "id": "g"})], fhir_version="R4")
    stored = _versions(store)
    assert stored[0] == saved[0] and stored[1][1] != saved[1][1]


def test_a_write_rolled_back_changes_no_version(store: Store) -> None:
    case = next(iter(generate_cases(1, seed=8)))
    before = _versions(store)
    with pytest.raises(RuntimeError), store.session() as s:
        save_case(s, case)
        raise RuntimeError("the transaction fails after the save")
    assert _versions(store) == before


def test_a_write_through_another_store_handle_is_seen(store: Store) -> None:
    """Another `serve` worker, the CLI or a pull worker: a process of its own, the same database."""
    url = store.engine.url.render_as_string(hide_password=False)
    before = _versions(store)
    with open_store(url) as other, other.session() as s:
        save_case(s, next(iter(generate_cases(1, seed=9))))
    assert _versions(store)[0] != before[0]


def test_a_store_missing_its_counter_rows_starts_counting(store: Store) -> None:
    with store.session() as s:
        s.execute(delete(StoreChangeRow))
    assert _versions(store) == (0, (0, 0))
    with store.session() as s:
        save_case(s, next(iter(generate_cases(1, seed=10))))
    assert _versions(store)[0] == 1


@pytest.mark.postgres
def test_a_released_savepoint_leaves_the_counter_to_the_commit(pg_store_url: str) -> None:
    """The ledger records a push's entries in a savepoint. Raised when that savepoint is released, the
    counter's row stayed locked for the rest of the transaction: another writer committing meanwhile
    waited for it (and one holding a case this transaction then wanted would have deadlocked)."""
    with open_store(pg_store_url) as store, open_store(pg_store_url) as other:
        before = _versions(store)[0]
        with store.session() as s:
            save_case(s, next(iter(generate_cases(1, seed=11))))
            with s.begin_nested():
                pass
            with other.session() as o:
                o.execute(text("SET LOCAL lock_timeout = '5s'"))  # waiting on the row is the failure
                save_case(o, next(iter(generate_cases(1, seed=12))))
        assert _versions(store)[0] == before + 2


def _since(store: Store, seen: int) -> dict[str, CaseStamp]:
    with store.session(read_only=True) as s:
        return case_stamps_since(s, seen)


def _seen(store: Store) -> int:
    with store.session(read_only=True) as s:
        return changes_seen(s)


def test_the_cases_changed_since_a_moment_are_those_saved_or_given_resources_after_it(store: Store) -> None:
    first, second, third = generate_cases(3, seed=13)
    with store.session() as s:
        save_case(s, first)
        save_case(s, second)
        save_case(s, third)
    at_start = _seen(store)
    with store.session(read_only=True) as s:
        every = case_stamps(s)
    assert _since(store, 0) == every, "from the beginning: every case, stamped as a full read stamps it"
    assert _since(store, at_start) == {}

    with store.session() as s:
        put_resources(s, first.id, [("k1", {"resourceType": "Goal", "id": "g"})], fhir_version="R4")
    stored = _seen(store)
    moved = _since(store, at_start)
    assert moved.keys() == {first.id}, "a resource stored moves its case's stamp, the case unsaved"
    with store.session(read_only=True) as s:
        assert moved[first.id] == case_stamps(s)[first.id] != every[first.id]

    with store.session() as s:
        save_case(s, second.model_copy(update={"plan_summary": "Reviewed."}))
        save_case(s, third)  # unchanged: nothing written
        record_audit(s, principal="k", action="read", case_ids=[third.id])
    assert _since(store, stored).keys() == {second.id}
    assert _since(store, at_start).keys() == {first.id, second.id}

    latest = _seen(store)
    with pytest.raises(RuntimeError), store.session() as s:
        save_case(s, third.model_copy(update={"plan_summary": "Never kept."}))
        raise RuntimeError("the transaction fails after the save")
    assert _since(store, latest) == {} and _seen(store) == latest, "a write rolled back has no place"


@pytest.mark.postgres
def test_a_reader_following_concurrent_writers_ends_with_every_stamp(pg_store_url: str) -> None:
    """Writers saving cases and storing their resources at once, some the same case in two transactions
    (a wait on each other's rows the wrong way round would be a deadlock); a reader following them with
    the cases changed since its last look, each statement its own snapshot (READ COMMITTED), ends with the
    stamps a full read gives: no commit is passed over between two looks."""
    cases = list(generate_cases(40, seed=14))
    with open_store(pg_store_url) as store, store.session() as s:
        for case in cases:
            save_case(s, case)
    writers, followed, seen = 3, {}, [-1]
    done = threading.Semaphore(0)

    def look(store: Store) -> None:
        with store.session() as s:
            now = changes_seen(s)
            followed.update(case_stamps_since(s, seen[0]))
        seen[0] = now

    def work(n: int, go: Callable[[], object]) -> None:
        with open_store(pg_store_url) as store:
            go()
            if n == writers:  # the reader: looks until every writer is done, then once more
                finished = 0
                while finished < writers:
                    look(store)
                    finished += done.acquire(blocking=False)
                look(store)
                return
            pick = random.Random(n)
            try:
                for round_ in range(30):
                    with store.session() as s:  # in id order, as every writer: no deadlock of their own
                        for case in sorted(pick.sample(cases, 2), key=lambda c: c.id):
                            if pick.random() < 0.5:
                                save_case(s, case.model_copy(update={"plan_summary": f"writer {n}, {round_}"}))
                            else:
                                goal = {"resourceType": "Goal", "id": f"g{n}-{round_}"}
                                put_resources(s, case.id, [(f"k{n}-{round_}", goal)], fhir_version="R4")
            finally:
                done.release()

    run_together(writers + 1, work)
    with open_store(pg_store_url) as store, store.session(read_only=True) as s:
        assert followed == case_stamps(s)
