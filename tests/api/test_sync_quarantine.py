"""``GET /api/v1/sync/quarantine``: what pulls set aside, page by page, per server, and who read it."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from fhir_cm.store import Store, add_quarantine, list_audit

from .conftest import Keys, bearer

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
A = "http://a.example/fhir"
B = "http://b.example/fhir"


def set_aside(store: Store, count: int, source: str = A) -> None:
    """``count`` bad Goals from ``source``, ids ``a0``, ``a1``… (``b0``… from B), a minute apart."""
    with store.session() as s:
        for n in range(count):
            raw = {"resourceType": "Goal", "id": f"{source[7]}{n}", "note": [{"text": "Jane Doe, 12 Elm St"}]}
            add_quarantine(s, source=source, raw=raw, reason="bad status", now=T0 + dt.timedelta(minutes=n))


def test_every_entry_can_be_reached_page_by_page(client: TestClient, keys: Keys, api_store: Store) -> None:
    set_aside(api_store, 5)
    pages = [
        client.get(f"/api/v1/sync/quarantine?limit=2&offset={offset}", headers=bearer(keys.supervisor)).json()
        for offset in (0, 2, 4, 6)
    ]
    ids = [[q["server_id"] for q in page] for page in pages]
    assert ids == [["a4", "a3"], ["a2", "a1"], ["a0"], []]
    bad = client.get("/api/v1/sync/quarantine?offset=-1", headers=bearer(keys.supervisor))
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_the_list_can_be_of_one_server(client: TestClient, keys: Keys, api_store: Store) -> None:
    set_aside(api_store, 2, A)
    set_aside(api_store, 1, B)
    for asked in (B, B + "/"):  # a base URL is the same server with or without its trailing slash
        body = client.get("/api/v1/sync/quarantine", params={"source": asked}, headers=bearer(keys.supervisor)).json()
        assert [(q["source"], q["server_id"]) for q in body] == [(B, "b0")]


def test_reading_the_resources_set_aside_is_audited(client: TestClient, keys: Keys, api_store: Store) -> None:
    """They are patient data as the server sent them: a supervisor reading them leaves a trace."""
    set_aside(api_store, 2)
    r = client.get("/api/v1/sync/quarantine", headers=bearer(keys.supervisor))
    assert "Jane Doe" in r.text
    with api_store.session(read_only=True) as s:
        rows = [e for e in list_audit(s, limit=100) if e.action == "quarantine"]
    me = client.get("/api/v1/me", headers=bearer(keys.supervisor)).json()["key_id"]
    assert [(e.principal, e.case_id, e.request_id) for e in rows] == [(me, None, r.headers["X-Request-Id"])]
    assert rows[0].detail == "entries:" + ",".join(str(q["id"]) for q in r.json())
    assert client.get("/api/v1/sync/quarantine", headers=bearer(keys.cm1)).status_code == 403


def test_a_dismissed_entry_stays_dismissed_until_a_new_version_comes(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """Before, an entry could not be got rid of: one of a resource the server deleted stayed, and
    counted, for ever. Pulls read resources again all the time, so a dismissal must outlive them."""
    goal = {"resourceType": "Goal", "id": "g1", "meta": {"versionId": "4"}, "lifecycleStatus": "cancelled"}
    with api_store.session() as s:
        entry = add_quarantine(s, source=A, raw=goal, reason="bad status", now=T0).id
    sup = bearer(keys.supervisor)
    assert client.get("/api/v1/sync/status", headers=sup).json()["quarantined"] == 1

    done = client.post(f"/api/v1/sync/quarantine/{entry}/dismiss", headers=sup)
    me = client.get("/api/v1/me", headers=sup).json()["key_id"]
    assert done.status_code == 200 and done.json()["dismissed_by"] == me
    with api_store.session() as s:  # the next pull's overlap reads it again
        add_quarantine(s, source=A, raw=goal, reason="bad status", now=T0 + dt.timedelta(minutes=1))
    assert client.get("/api/v1/sync/quarantine", headers=sup).json() == []
    assert [q["id"] for q in client.get("/api/v1/sync/quarantine?dismissed=true", headers=sup).json()] == [entry]
    assert client.get("/api/v1/sync/status", headers=sup).json()["quarantined"] == 0
    assert client.get("/api/v1/sync/health", headers=sup).json()["quarantined"] == 0

    with api_store.session() as s:  # changed on the server, still bad: someone has to look again
        add_quarantine(s, source=A, raw={**goal, "meta": {"versionId": "5"}}, reason="bad status", now=T0)
    (back,) = client.get("/api/v1/sync/quarantine", headers=sup).json()
    assert (back["id"], back["version"], back["dismissed_at"]) == (entry, "5", None)

    with api_store.session(read_only=True) as s:
        rows = [e for e in list_audit(s, limit=100) if e.action == "quarantine-dismiss"]
    assert [(e.principal, e.detail) for e in rows] == [(me, f"entry:{entry}")]
    assert client.post("/api/v1/sync/quarantine/999/dismiss", headers=sup).status_code == 404
    assert client.post(f"/api/v1/sync/quarantine/{entry}/dismiss", headers=bearer(keys.cm1)).status_code == 403


def test_a_supervisor_of_one_programme_is_not_shown_the_resources_set_aside(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """An entry is a resource as the server sent it, of no case and so of no programme: a supervisor
    limited to one programme would read every programme's patients in it (as in the FHIR façade)."""
    set_aside(api_store, 1)
    (entry,) = client.get("/api/v1/sync/quarantine", headers=bearer(keys.supervisor)).json()
    for key in (keys.supervisor_hc, keys.supervisor_sw):
        r = client.get("/api/v1/sync/quarantine", headers=bearer(key))
        assert r.status_code == 403 and "Jane Doe" not in r.text, r.text
        assert client.post(f"/api/v1/sync/quarantine/{entry['id']}/dismiss", headers=bearer(key)).status_code == 403
    with api_store.session(read_only=True) as s:
        assert [e.action for e in list_audit(s, limit=100) if e.action.startswith("quarantine")] == ["quarantine"]
    assert client.get("/api/v1/sync/quarantine", headers=bearer(keys.supervisor)).json() == [entry]
