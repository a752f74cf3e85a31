"""The JSON of cases kept between reads (``api._case_json``): never older than the store, and the same
bytes a fresh serialisation would give."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from fhir_cm.api._case_json import CaseJson, page_json
from fhir_cm.api._models import CasePage
from fhir_cm.api.routes.cases import case_out
from fhir_cm.store import Store, get_case_record, open_store, save_case
from fhir_cm.synthetic import generate_cases

from .conftest import Keys, bearer, create


def _renamed_elsewhere(api_store: Store, case_id: str, name: str) -> None:
    """Save a change to the case through a store of its own, as another `serve` worker or the CLI would."""
    url = api_store.engine.url.render_as_string(hide_password=False)
    with open_store(url) as other, other.session() as s:
        record = get_case_record(s, case_id)
        assert record is not None
        patient = record.case.patient.model_copy(update={"name": name})
        save_case(s, record.case.model_copy(update={"patient": patient}), expected_revision=record.revision)


def test_a_case_saved_by_another_process_is_read_and_listed_as_saved(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    created = create(client, keys.supervisor)
    case_id = created["case"]["id"]
    first = client.get(f"/api/v1/cases/{case_id}", headers=bearer(keys.supervisor))
    listed = client.get("/api/v1/cases", headers=bearer(keys.supervisor))
    assert first.json()["case"]["patient"]["name"] == "Ada Example"
    assert listed.json()["items"][0]["case"]["patient"]["name"] == "Ada Example"

    _renamed_elsewhere(api_store, case_id, "Ada Renamed")

    again = client.get(f"/api/v1/cases/{case_id}", headers=bearer(keys.supervisor))
    assert again.json()["case"]["patient"]["name"] == "Ada Renamed"
    assert again.headers["ETag"] != first.headers["ETag"]
    listed_again = client.get("/api/v1/cases", headers=bearer(keys.supervisor)).json()
    assert listed_again["items"][0]["case"]["patient"]["name"] == "Ada Renamed"
    assert listed_again["items"][0]["revision"] == again.json()["revision"]


def test_a_page_answers_the_bytes_its_model_would(client: TestClient, keys: Keys, api_store: Store) -> None:
    for n in range(3):
        create(client, keys.supervisor, id=f"case-{n}", patient={"kind": "patient", "id": f"p-{n}"})
    params = {"limit": 2}
    for _ in range(2):  # made, then kept
        answer = client.get("/api/v1/cases", params=params, headers=bearer(keys.supervisor))
        with api_store.session() as s:
            records = [get_case_record(s, f"case-{n}") for n in range(2)]
        model = CasePage(items=[case_out(r) for r in records if r is not None], limit=2, offset=0, next_offset=2)
        assert answer.content == model.__pydantic_serializer__.to_json(model)


def test_kept_answers_are_the_newest_used_and_of_one_store(api_store: Store) -> None:
    kept = CaseJson(2)
    made: list[str] = []

    def make(record: object) -> BaseModel:
        made.append("x")
        return case_out(record)  # type: ignore[arg-type]

    with api_store.session() as s:
        for n in range(3):
            case = next(iter(generate_cases(1, seed=n))).model_copy(update={"id": f"c-{n}"})
            save_case(s, case)
        records = [get_case_record(s, f"c-{n}") for n in range(3)]
    a, b, c = (r for r in records if r is not None)
    kept.of(api_store, a, "item", make)
    kept.of(api_store, b, "item", make)
    kept.of(api_store, a, "item", make)  # kept: a is now the newest used
    kept.of(api_store, c, "item", make)  # b goes
    assert len(made) == 3 and len(kept) == 2
    kept.of(api_store, a, "item", make)
    assert len(made) == 3
    kept.of(api_store, b, "item", make)
    assert len(made) == 4
    with open_store("sqlite://") as other:
        kept.of(other, a, "item", make)  # another store: nothing kept applies
    assert len(made) == 5


def test_a_page_frame_must_start_with_its_items() -> None:
    class Wrong(BaseModel):
        limit: int
        items: list[int]

    with pytest.raises(ValueError, match="first field"):
        page_json(Wrong(limit=1, items=[]), [b"1"])
