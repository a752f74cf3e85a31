"""A conflict keeps the base beside ours and theirs: what both sides last agreed on, for the person deciding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhir_cm.domain import Case
from fhir_cm.store import list_conflicts, open_store, save_case
from fhir_cm.sync import merge_case
from fhir_cm.sync._conflicts import record_clashes
from tests.mapping.builders import full_case


def changed(case: Case, **changes: Any) -> Case:
    return Case.model_validate({**case.model_dump(), **changes})


def test_a_clash_carries_the_base_value_of_each_clashing_field(tmp_path: Path) -> None:
    base = full_case()
    goals = [
        {**g.model_dump(), "achievement": "achieved"} if i == 0 else g.model_dump() for i, g in enumerate(base.goals)
    ]
    outcome = merge_case(base, changed(base, acuity="low"), changed(base, acuity="intensive", goals=goals))
    (clash,) = outcome.clashes
    assert (clash.local, clash.server, clash.base) == (
        {"acuity": "low"},
        {"acuity": "intensive"},
        {"acuity": base.acuity},
    )
    with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store, store.session() as s:
        save_case(s, outcome.case, enqueue=False)
        record_clashes(s, base.id, outcome.clashes)
        (stored,) = list_conflicts(s, case_id=base.id)
    assert stored.base == {"acuity": base.acuity}


def test_without_a_known_base_the_conflict_says_so() -> None:
    base = full_case()
    (clash,) = merge_case(None, changed(base, acuity="low"), changed(base, acuity="intensive")).clashes
    assert clash.base is None
