"""Caseload and outcomes are kept until a case changes: never older than the store, never another's."""

from __future__ import annotations

from fastapi.testclient import TestClient

from fhir_cm.store import Store, list_audit
from tests.api.conftest import Keys, bearer, create


def test_a_kept_caseload_is_replaced_as_soon_as_a_case_changes(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="a")
    first = client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json()
    assert client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json() == first
    create(client, keys.supervisor, id="b")
    after = client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json()
    assert [m["open_cases"] for m in after["managers"]] == [2]
    moved = client.post(
        "/api/v1/cases/b/status", headers=bearer(keys.supervisor), json={"status": "on-hold", "reason": "in hospital"}
    )
    assert moved.status_code == 200, moved.text
    statuses = {
        c["case_id"]: c["status"]
        for c in client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json()["managers"][0]["cases"]
    }
    assert statuses == {"a": "active", "b": "on-hold"}


def test_a_kept_result_is_never_served_to_another_scope(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="a")
    create(client, keys.supervisor, id="b", case_manager={"kind": "practitioner", "id": "cm-2"})
    everyone = client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json()
    own = client.get("/api/v1/caseload", headers=bearer(keys.cm1)).json()
    assert [m["case_manager"] for m in everyone["managers"]] == ["cm-1", "cm-2"]
    assert [m["case_manager"] for m in own["managers"]] == ["cm-1"]
    sw = client.get("/api/v1/outcomes", headers=bearer(keys.supervisor_sw)).json()
    hc = client.get("/api/v1/outcomes", headers=bearer(keys.supervisor_hc)).json()
    assert (sum(p["cases"] for p in hc["programmes"]), sum(p["cases"] for p in sw["programmes"])) == (2, 0)


def test_every_ask_is_audited_even_when_the_answer_was_kept(client: TestClient, keys: Keys, api_store: Store) -> None:
    create(client, keys.supervisor, id="a")
    for _ in range(3):
        assert client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).status_code == 200
        assert client.get("/api/v1/outcomes", headers=bearer(keys.supervisor)).status_code == 200
    with api_store.session(read_only=True) as s:
        actions = [e.action for e in list_audit(s, limit=100)]
    assert (actions.count("caseload"), actions.count("outcomes")) == (3, 3)
