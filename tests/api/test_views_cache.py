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


def test_an_unchanged_caseload_shown_again_is_one_row_naming_the_first_showing(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """A refreshed dashboard does not write a row per case each time: the rows of the first showing
    name the cases, each later showing of the same result to the same caller names that request."""
    create(client, keys.supervisor, id="a")
    create(client, keys.supervisor, id="b")
    first = client.get("/api/v1/caseload", headers=bearer(keys.supervisor))
    again = [client.get("/api/v1/caseload", headers=bearer(keys.supervisor)) for _ in range(2)]
    own = client.get("/api/v1/caseload", headers=bearer(keys.cm1))  # another caller: rows of their own
    create(client, keys.supervisor, id="c")
    changed = client.get("/api/v1/caseload", headers=bearer(keys.supervisor))  # a case changed: rows again
    assert all(r.status_code == 200 for r in (first, *again, own, changed))
    assert all(r.json() == first.json() for r in again)
    with api_store.session(read_only=True) as s:
        rows = [e for e in list_audit(s, limit=100) if e.action == "caseload"]

    def of(response: object) -> list[tuple[str | None, str | None]]:
        rid = response.headers["x-request-id"]  # type: ignore[attr-defined]
        return sorted((e.case_id, e.detail) for e in rows if e.request_id == rid)

    assert of(first) == [("a", None), ("b", None)]
    assert [of(r) for r in again] == [[(None, f"unchanged:{first.headers['x-request-id']}")]] * 2
    assert of(own) == [("a", None), ("b", None)]
    assert of(changed) == [("a", None), ("b", None), ("c", None)]
