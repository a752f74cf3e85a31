"""The claim takes a case the push's caller just saved as it is in memory, unless it was saved again
since: then it reads the store's."""

from __future__ import annotations

from pathlib import Path

from fhir_cm.config import Settings
from fhir_cm.store import open_store, queue_push, save_case
from fhir_cm.sync._push_loop import _Claimer
from fhir_cm.synthetic import generate_cases


def test_a_case_saved_by_the_caller_is_taken_from_memory_unless_saved_again(tmp_path: Path) -> None:
    first, second = generate_cases(2, seed=71)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'store.db'}", identifier_system="urn:test")
    with open_store(settings.database_url) as store:
        with store.session() as s:
            saved = {c.id: (save_case(s, c, enqueue=False), c) for c in (first, second)}
            for c in (first, second):
                queue_push(s, c.id)
            changed = second.model_copy(update={"goals": second.goals[:-1]})
            save_case(s, changed, enqueue=False)  # someone saved it again after the caller

        rows = _Claimer(store, "w", settings, tried=set(), saved=saved)()

    cases = {item.case_id: case for item, case in rows}
    assert cases[first.id] is first  # not decoded again
    assert cases[second.id] is not second and cases[second.id] == changed  # the store's, newer
