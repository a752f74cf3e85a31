"""The counters of writes to cases and resources (``store_changes``): what the caseload, outcomes, worklist
and FHIR façade caches ask each request instead of counting every case and resource."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text

from fhir_cm.domain import CaseStatus
from fhir_cm.store import Store, cases_version, open_store, put_resources, record_audit, save_case, store_version
from fhir_cm.store._tables import StoreChangeRow
from fhir_cm.synthetic import generate_cases


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
