"""Searches by token and reference values answer from the index's value maps: the same resources, in
the same order, as comparing every resource of the type — for every value the store's resources hold,
and after a case changes."""

from __future__ import annotations

from pathlib import Path

from fhir_cm.api.facade import FacadeIndex
from fhir_cm.api.facade._match import ANY, RefMatch, TokenMatch
from fhir_cm.api.facade._params import RESOURCE_TYPES, Criterion, params_for
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


def test_value_maps_find_what_a_full_comparison_finds(tmp_path: Path) -> None:
    cases = list(generate_cases(30, seed=5))
    with open_store(f"sqlite:///{tmp_path / 'f.db'}") as store:
        with store.session() as s:
            for case in cases:
                save_case(s, case, enqueue=False)
        index = FacadeIndex(SYSTEM)
        index.warm(store, "R4")
        assert _every_value_searched_both_ways(index, store) > 50
        moved = cases[0].model_copy(update={"patient": cases[1].patient})  # a case now of another patient
        with store.session() as s:
            save_case(s, moved, enqueue=False)
        assert _every_value_searched_both_ways(index, store) > 50
