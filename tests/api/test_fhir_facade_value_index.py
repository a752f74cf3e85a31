"""Searches by token and reference values answer from the index's value maps: the same resources, in
the same order, as comparing every resource of the type — for every value the store's resources hold,
and after a case changes; and the orders kept in step with changes are the orders built afresh."""

from __future__ import annotations

from pathlib import Path

import pytest

import fhir_cm.api.facade._index as facade_index
from fhir_cm.api.facade import FacadeIndex
from fhir_cm.api.facade._match import ANY, RefMatch, TokenMatch
from fhir_cm.api.facade._params import RESOURCE_TYPES, Criterion, params_for
from fhir_cm.domain import Case, GoalStatus
from fhir_cm.store import Store, open_store, save_case
from fhir_cm.synthetic import generate_cases

SYSTEM = "urn:fhir-cm:id"


def _every_value_searched_both_ways(index: FacadeIndex, store: Store) -> int:
    checked = 0
    for rtype in RESOURCE_TYPES:
        held, _ = index.search(store, "R4", rtype, [])  # every resource of the type, by id
        for param in params_for(rtype).values():
            if param.kind not in ("token", "reference"):
                continue
            for value in sorted({v for r in held for v in r.values.get(param.name, ())}, key=repr)[:25]:
                matcher = TokenMatch(ANY, value[1]) if param.kind == "token" else RefMatch(None, value[1])
                criteria = [Criterion(param, (matcher,))]
                found, _ = index.search(store, "R4", rtype, criteria)
                assert found == [r for r in held if r.matches(criteria)], (rtype, param.name, value)
                assert found  # the value is held, so something must be found
                checked += 1
    return checked


def _warmed(store: Store, cases: list[Case]) -> FacadeIndex:
    """An index of ``cases``, saved in ``store``, warmed as a start-up warms it."""
    with store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
    index = FacadeIndex(SYSTEM)
    index.warm(store, "R4")
    return index


def test_value_maps_find_what_a_full_comparison_finds(tmp_path: Path) -> None:
    cases = list(generate_cases(30, seed=5))
    with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        index = _warmed(store, cases)
        assert _every_value_searched_both_ways(index, store) > 50
        moved = cases[0].model_copy(update={"patient": cases[1].patient})  # a case now of another patient
        with store.session() as s:
            save_case(s, moved, enqueue=False)
        assert _every_value_searched_both_ways(index, store) > 50


def _orders(index: FacadeIndex) -> tuple[dict[str, list[str]], dict[tuple[str, str], dict[str, list[str]]]]:
    """The view's orders by id and by value, as ids; each entry the very resource the view serves."""
    view = index._views["R4"]
    for rtype in RESOURCE_TYPES:
        for param in params_for(rtype).values():
            if param.kind in ("token", "reference"):
                view.having(rtype, param.name, "")
    served = {(r.type, r.id): r for held in view.by_type.values() for r in held.values()}
    assert all(served[(r.type, r.id)] is r for order in view._sorted.values() for r in order)
    held_by_value = [r for maps in view._keyed.values() for keyed in maps.values() for rs in keyed.values() for r in rs]
    assert all(served[(r.type, r.id)] is r for r in held_by_value)
    by_id = {rtype: [r.id for r in view.in_order(rtype)] for rtype in RESOURCE_TYPES}
    by_value = {
        (rtype, param): {k: [r.id for r in held] for k, held in keyed.items()}
        for rtype, maps in view._keyed.items()
        for param, keyed in maps.items()
    }
    return by_id, by_value


@pytest.mark.parametrize("kept_up_to", [500, 0], ids=["kept-in-step", "rebuilt"])
def test_orders_kept_in_step_with_changes_equal_orders_built_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept_up_to: int
) -> None:
    monkeypatch.setattr(facade_index, "_KEPT_IN_ORDER_UP_TO", kept_up_to)
    cases = list(generate_cases(30, seed=5))
    more = list(generate_cases(33, seed=6))[30:]
    with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        index = _warmed(store, cases)
        with_goals = [c for c in cases if c.goals]
        changes = [
            [cases[0].model_copy(update={"patient": cases[1].patient})],  # another patient: every reference moves
            [with_goals[1].model_copy(update={"goals": with_goals[1].goals[1:]})],  # a goal gone
            more,  # new cases
            [
                with_goals[2].model_copy(
                    update={"goals": [with_goals[2].goals[0].model_copy(update={"status": GoalStatus.CANCELLED})]}
                ),
                cases[3].model_copy(update={"plan_summary": "Reviewed."}),
            ],
        ]
        for changed in changes:
            with store.session() as s:
                for case in changed:
                    save_case(s, case, enqueue=False)
            index.search(store, "R4", "Goal", [])  # a request: the view catches up
            afresh = FacadeIndex(SYSTEM)
            afresh.warm(store, "R4")
            assert _orders(index) == _orders(afresh)
        assert _every_value_searched_both_ways(index, store) > 50
