"""The façade catching up with a store that changed: after a save it reads the stamps of the cases saved
since its last look, not every case's, and ends as an index built afresh would."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete

import fhir_cm.api.facade._index as facade_index
from fhir_cm.api.facade import FacadeIndex
from fhir_cm.store import Store, put_resources, save_case
from fhir_cm.store._tables import StoreChangeRow
from fhir_cm.synthetic import generate_cases
from tests.api.test_fhir_facade_kept import HOSPITAL, SYSTEM, held, pg_database, started, store

__all__ = ["pg_database", "store"]  # the fixtures, used by name


@pytest.fixture
def full_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per full read of every case's stamp."""
    calls: list[int] = []
    real = facade_index.case_stamps

    def counting(session: Any) -> Any:
        calls.append(1)
        return real(session)

    monkeypatch.setattr(facade_index, "case_stamps", counting)
    return calls


@pytest.fixture
def read_since(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """The cases each look since the last one read the stamps of."""
    calls: list[set[str]] = []
    real = facade_index.case_stamps_since

    def counting(session: Any, seen: int) -> Any:
        found = real(session, seen)
        calls.append(set(found))
        return found

    monkeypatch.setattr(facade_index, "case_stamps_since", counting)
    return calls


def test_after_a_save_a_request_reads_only_the_stamps_of_the_cases_saved_since(
    store: Store, full_reads: list[int], read_since: list[set[str]]
) -> None:
    index = FacadeIndex(SYSTEM, bases=[HOSPITAL])
    index.warm(store, "R4")
    assert full_reads == [1] and read_since == [], "the start-up reads every stamp, once"
    cases = list(generate_cases(6, 31))
    changed = cases[1].model_copy(update={"plan_summary": "Reviewed: plan continues."})
    with store.session() as s:
        save_case(s, changed)
    assert index.read(store, "R4", "CarePlan", "nothing") is None
    assert full_reads == [1] and read_since == [{changed.id}]

    with store.session() as s:
        put_resources(s, cases[2].id, [("extra", {"resourceType": "Goal", "id": "extra"})], fhir_version="R4")
        save_case(s, cases[3].model_copy(update={"plan_summary": "Another."}))
    index.search(store, "R4", "Goal", [])
    assert full_reads == [1] and read_since[1:] == [{cases[2].id, cases[3].id}]
    assert held(index._views["R4"]) == held(started(store)), "as an index built afresh"


def test_a_store_whose_counters_were_reset_is_read_in_full_again(
    store: Store, full_reads: list[int], read_since: list[set[str]]
) -> None:
    """Counting again from zero, the store's later writes would sit below what the index saw last."""
    index = FacadeIndex(SYSTEM, bases=[HOSPITAL])
    index.warm(store, "R4")
    with store.session() as s:
        s.execute(delete(StoreChangeRow))
    case = next(iter(generate_cases(6, 31))).model_copy(update={"plan_summary": "After the reset."})
    with store.session() as s:
        save_case(s, case)
    index.search(store, "R4", "CarePlan", [])
    assert full_reads == [1, 1] and read_since == []
    assert held(index._views["R4"]) == held(started(store))
