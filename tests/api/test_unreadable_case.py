"""A stored case this version's model cannot read (stored before a rule of it) does not take the API
down: lists and figures leave it out and say how many, a read or change of it is a 409 naming
`fhir-cm check`, and the start-up warming fills the caches with the others. Nothing of it is changed."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from fhir_cm.store import Store
from fhir_cm.store._tables import CaseRow
from tests.api.conftest import Keys, bearer, create
from tests.unreadable import SECRET_NOTE, make_unreadable


def _three(client: TestClient, keys: Keys, api_store: Store) -> tuple[list[str], str]:
    """Three open cases of cm-1; the middle one (by id) made unreadable. Returns the others, and it."""
    ids = sorted(create(client, keys.cm1, status="active")["case"]["id"] for _ in range(3))
    make_unreadable(api_store, ids[1])
    return [ids[0], ids[2]], ids[1]


def _stored(store: Store, case_id: str) -> tuple[int, dict[str, object]]:
    with store.session(read_only=True) as s:
        row = s.execute(select(CaseRow.revision, CaseRow.data).where(CaseRow.case_id == case_id)).one()
    return row.revision, row.data


def test_the_start_up_warming_fills_the_caches_with_the_readable_cases(
    app: FastAPI, client: TestClient, keys: Keys, api_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    from fhir_cm.api._app import _warm

    readable, bad = _three(client, keys, api_store)
    with caplog.at_level(logging.WARNING):
        _warm(app, serving=False)

    assert len(api_store.cases) == len(readable)
    assert "warming the caches failed" not in caplog.text
    assert bad in caplog.text and SECRET_NOTE not in caplog.text


def test_the_case_list_leaves_it_out_and_says_so(client: TestClient, keys: Keys, api_store: Store) -> None:
    readable, bad = _three(client, keys, api_store)

    for key in (keys.supervisor, keys.cm1):
        page = client.get("/api/v1/cases", headers=bearer(key))
        assert page.status_code == 200, page.text
        assert [c["case"]["id"] for c in page.json()["items"]] == readable
        assert page.json()["unreadable"] == 1
    # A caller who could not see it is not told of it.
    assert client.get("/api/v1/cases", headers=bearer(keys.cm2)).json()["unreadable"] == 0
    assert client.get("/api/v1/cases", headers=bearer(keys.supervisor_sw)).json()["unreadable"] == 0


def test_a_page_ending_on_it_still_points_to_the_next(client: TestClient, keys: Keys, api_store: Store) -> None:
    readable, _ = _three(client, keys, api_store)

    first = client.get("/api/v1/cases", params={"limit": 2}, headers=bearer(keys.supervisor)).json()
    assert ([c["case"]["id"] for c in first["items"]], first["next_offset"]) == (readable[:1], 2)
    second = client.get("/api/v1/cases", params={"limit": 2, "offset": 2}, headers=bearer(keys.supervisor)).json()
    assert [c["case"]["id"] for c in second["items"]] == readable[1:]


def test_reading_or_changing_it_is_a_409_naming_check_and_nothing_is_written(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    _, bad = _three(client, keys, api_store)
    before = _stored(api_store, bad)

    read = client.get(f"/api/v1/cases/{bad}", headers=bearer(keys.cm1))
    change = client.patch(f"/api/v1/cases/{bad}", json={"acuity": "high"}, headers=bearer(keys.supervisor))
    contact = client.post(
        f"/api/v1/cases/{bad}/contacts",
        json={"date": "2025-06-01", "mode": "phone"},
        headers=bearer(keys.cm1),
    )

    for answer in (read, change, contact):
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "fhir-cm check" in answer.json()["detail"] and "contacts.0.id" in answer.json()["detail"]
        assert SECRET_NOTE not in answer.text
    assert _stored(api_store, bad) == before
    # Whoever could not see it gets the 404 of a case that does not exist.
    assert client.get(f"/api/v1/cases/{bad}", headers=bearer(keys.cm2)).status_code == 404


def test_caseload_and_outcomes_count_the_others_and_say_so(client: TestClient, keys: Keys, api_store: Store) -> None:
    readable, _ = _three(client, keys, api_store)

    caseload = client.get("/api/v1/caseload", headers=bearer(keys.supervisor))
    outcomes = client.get("/api/v1/outcomes", headers=bearer(keys.supervisor))

    assert caseload.status_code == outcomes.status_code == 200, caseload.text + outcomes.text
    [manager] = caseload.json()["managers"]
    assert (manager["open_cases"], caseload.json()["unreadable"]) == (len(readable), 1)
    assert outcomes.json()["unreadable"] == 1
    assert client.get("/api/v1/caseload", headers=bearer(keys.cm2)).json()["unreadable"] == 0


def test_the_fhir_facade_serves_the_others(client: TestClient, keys: Keys, api_store: Store) -> None:
    readable, bad = _three(client, keys, api_store)

    search = client.get("/fhir/EpisodeOfCare", headers=bearer(keys.service))
    assert search.status_code == 200, search.text
    entries = search.json()["entry"]
    assert sorted(e["resource"]["id"] for e in entries if e["search"]["mode"] == "match") == readable
    [outcome] = [e["resource"] for e in entries if e["search"]["mode"] == "outcome"]
    assert "1 case(s) in the store" in outcome["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/EpisodeOfCare/{bad}", headers=bearer(keys.service)).status_code == 404


def test_rows_about_it_stay_listed_to_whoever_could_see_it(client: TestClient, keys: Keys, api_store: Store) -> None:
    """Audit entries (and conflicts, transitions) are listed by who may see their case: judged by the
    unreadable case's row, not by failing the whole list."""
    readable, bad = _three(client, keys, api_store)

    seen = client.get("/api/v1/audit", headers=bearer(keys.supervisor_hc))
    hidden = client.get("/api/v1/audit", headers=bearer(keys.supervisor_sw))
    transitions = client.get("/api/v1/transitions", headers=bearer(keys.cm1))

    assert seen.status_code == hidden.status_code == transitions.status_code == 200, seen.text
    assert {e["case_id"] for e in seen.json()} == {*readable, bad}
    assert hidden.json() == []
