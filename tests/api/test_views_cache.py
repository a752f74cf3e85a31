"""Caseload and outcomes are kept until a case changes: never older than the store, never another's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fastapi.testclient import TestClient
from httpx import Response

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
    changed = client.get("/api/v1/caseload", headers=bearer(keys.supervisor))  # a case changed: its row
    assert all(r.status_code == 200 for r in (first, *again, own, changed))
    assert all(r.json() == first.json() for r in again)
    of = _rows_of(api_store, "caseload")
    assert of(first) == [("a", None), ("b", None)]
    assert [of(r) for r in again] == [[(None, f"unchanged:{first.headers['x-request-id']}")]] * 2
    assert of(own) == [("a", None), ("b", None)]
    assert of(changed) == [("c", None), (None, f"changed:{first.headers['x-request-id']}")]


def _rows_of(api_store: Store, action: str) -> Callable[[Response], list[tuple[str | None, str | None]]]:
    """The audit rows (case, detail) of a response's request, of ``action``."""
    with api_store.session(read_only=True) as s:
        rows = [e for e in list_audit(s, limit=1000) if e.action == action]

    def of(response: Response) -> list[tuple[str | None, str | None]]:
        return sorted(
            ((e.case_id, e.detail) for e in rows if e.request_id == response.headers["x-request-id"]), key=str
        )

    return of


def test_a_changed_caseload_shown_again_names_what_changed_since_the_showing_that_listed_it(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """After any change a supervisor's caseload of ten thousand is shown again changed: its rows are the
    cases new to the caller or shown differently, those that left it, and one row naming the caller's last
    showing that listed every case — not every case again. Past about √(2n) changes since that showing,
    the caseload is listed again in full and later changes are told against that listing."""
    for case_id in ("a", "b", "c", "d"):
        create(client, keys.supervisor, id=case_id)
    sup = bearer(keys.supervisor)
    listed = client.get("/api/v1/caseload", headers=sup)
    base = listed.headers["x-request-id"]
    moved = client.post("/api/v1/cases/b/status", headers=sup, json={"status": "on-hold", "reason": "in hospital"})
    assert moved.status_code == 200, moved.text
    on_hold = client.get("/api/v1/caseload", headers=sup)
    assert client.post("/api/v1/cases/d/close", json={"reason": "done"}, headers=sup).status_code == 200
    closed = client.get("/api/v1/caseload", headers=sup)
    others = client.get("/api/v1/caseload", headers=bearer(keys.cm1))  # another caller: listed in full
    for case_id in ("e", "f"):  # with b and d, four changes of five cases since the listing: past √10
        create(client, keys.supervisor, id=case_id)
    relisted = client.get("/api/v1/caseload", headers=sup)
    create(client, keys.supervisor, id="g")
    after = client.get("/api/v1/caseload", headers=sup)
    assert all(r.status_code == 200 for r in (listed, on_hold, closed, others, relisted, after))
    of = _rows_of(api_store, "caseload")
    assert of(listed) == [("a", None), ("b", None), ("c", None), ("d", None)]
    assert of(on_hold) == [("b", None), (None, f"changed:{base}")]
    assert of(closed) == [("b", None), ("d", f"left:{base}"), (None, f"changed:{base}")]
    assert of(others) == [("a", None), ("b", None), ("c", None)]
    assert of(relisted) == [("a", None), ("b", None), ("c", None), ("e", None), ("f", None)]
    assert of(after) == [("g", None), (None, f"changed:{relisted.headers['x-request-id']}")]


def test_a_caseload_no_save_changed_is_shown_again_as_unchanged(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """A save that changes nothing the caseload shows (a plan summary) leaves every case's part as it was:
    the caseload is the one made before, not made again over every case, and shown again to the same
    caller it is audited as unchanged; a save that changes what it shows is told as changed."""
    for case_id in ("a", "b", "c"):
        create(client, keys.supervisor, id=case_id)
    sup = bearer(keys.supervisor)
    first = client.get("/api/v1/caseload", headers=sup)
    summary = client.patch("/api/v1/cases/b", headers=sup, json={"plan_summary": "Reviewed with the family."})
    assert summary.status_code == 200, summary.text
    again = client.get("/api/v1/caseload", headers=sup)
    moved = client.post("/api/v1/cases/b/status", headers=sup, json={"status": "on-hold", "reason": "in hospital"})
    assert moved.status_code == 200, moved.text
    changed = client.get("/api/v1/caseload", headers=sup)
    assert (first.status_code, again.status_code, changed.status_code) == (200, 200, 200)
    assert again.content == first.content
    of = _rows_of(api_store, "caseload")
    assert of(again) == [(None, f"unchanged:{first.headers['x-request-id']}")]
    assert of(changed) == [("b", None), (None, f"changed:{first.headers['x-request-id']}")]


def test_outcomes_no_save_changed_are_not_made_again(
    client: TestClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan summary saved changes no case's part of the figures and no other case of a patient: the
    outcomes are the ones made before, not combined again over every case; a case added is."""
    import fhir_cm.api.routes.outcomes as route

    combined: list[object] = []
    real = route.combine_outcomes

    def counting(*args: Any, **kwargs: Any) -> Any:
        combined.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(route, "combine_outcomes", counting)
    for case_id in ("a", "b"):
        create(client, keys.supervisor, id=case_id)
    sup = bearer(keys.supervisor)
    first = client.get("/api/v1/outcomes", headers=sup)
    made = len(combined)
    summary = client.patch("/api/v1/cases/b", headers=sup, json={"plan_summary": "Reviewed with the family."})
    assert summary.status_code == 200, summary.text
    again = client.get("/api/v1/outcomes", headers=sup)
    assert (first.status_code, again.status_code, again.content) == (200, 200, first.content)
    assert made > 0 and len(combined) == made
    create(client, keys.supervisor, id="c")
    assert client.get("/api/v1/outcomes", headers=sup).status_code == 200
    assert len(combined) > made
