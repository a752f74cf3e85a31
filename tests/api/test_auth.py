"""Authentication (401) and the three roles (403, and 404 for cases out of reach)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhir_cm.store import ApiRole, Store, create_api_key, list_api_keys, revoke_api_key

from .conftest import Keys, bearer, create

DATA_ROUTES = [
    ("GET", "/api/v1/cases"),
    ("POST", "/api/v1/cases"),
    ("GET", "/api/v1/cases/case-a"),
    ("GET", "/api/v1/caseload"),
    ("GET", "/api/v1/outcomes"),
    ("GET", "/api/v1/transitions"),
    ("GET", "/api/v1/sync/status"),
    ("GET", "/api/v1/sync/conflicts"),
    ("POST", "/api/v1/sync/push"),
    ("GET", "/api/v1/audit"),
]


@pytest.mark.parametrize(("method", "path"), DATA_ROUTES)
def test_no_credentials_is_401_with_a_challenge(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer fcm_0123456789abcdef_" + "A" * 43},
        {"X-API-Key": "fcm_0123456789abcdef_" + "A" * 43},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
)
def test_a_wrong_key_is_401_invalid_token(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/api/v1/cases", headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_another_scheme_is_401_invalid_request(client: TestClient, keys: Keys) -> None:
    response = client.get("/api/v1/cases", headers={"Authorization": f"Basic {keys.cm1}"})
    assert response.status_code == 401
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_the_x_api_key_works_beside_a_proxys_basic_login(client: TestClient, keys: Keys) -> None:
    """Behind a reverse proxy's HTTP Basic login the browser sends Authorization: Basic with every request."""
    proxy_login = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert client.get("/api/v1/cases", headers={**proxy_login, "X-API-Key": keys.cm1}).status_code == 200
    assert client.get("/fhir/Goal", headers={**proxy_login, "X-API-Key": keys.service}).status_code == 200
    refused = client.get("/api/v1/cases", headers={**proxy_login, "X-API-Key": keys.revoked})
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_a_key_with_one_character_changed_is_refused(client: TestClient, keys: Keys) -> None:
    tampered = keys.cm1[:-1] + ("A" if keys.cm1[-1] != "A" else "B")
    assert client.get("/api/v1/cases", headers=bearer(tampered)).status_code == 401


def test_the_x_api_key_header_works(client: TestClient, keys: Keys) -> None:
    assert client.get("/api/v1/cases", headers={"X-API-Key": keys.cm1}).status_code == 200


def test_a_revoked_key_is_401(client: TestClient, keys: Keys) -> None:
    assert client.get("/api/v1/cases", headers=bearer(keys.revoked)).status_code == 401


def test_revoking_takes_effect_at_once(client: TestClient, keys: Keys, api_store: Store) -> None:
    assert client.get("/api/v1/cases", headers=bearer(keys.cm2)).status_code == 200
    with api_store.session() as s:
        key_id = next(k.key_id for k in list_api_keys(s) if k.name == "cm2")
        revoke_api_key(s, key_id)
    assert client.get("/api/v1/cases", headers=bearer(keys.cm2)).status_code == 401


@pytest.mark.parametrize(("method", "path"), DATA_ROUTES)
def test_a_service_key_is_403_on_the_case_management_api(
    client: TestClient, keys: Keys, method: str, path: str
) -> None:
    response = client.request(method, path, json={}, headers=bearer(keys.service))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:fhir-cm:problem:forbidden"


def test_a_case_manager_sees_own_cases_and_team_cases_only(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="mine")
    create(client, keys.supervisor, id="theirs", case_manager={"kind": "practitioner", "id": "cm-2"})
    create(
        client,
        keys.supervisor,
        id="team",
        case_manager={"kind": "practitioner", "id": "cm-2"},
        team=[{"id": "m1", "role": "social-worker", "party": {"kind": "practitioner", "id": "cm-1"}}],
    )
    create(
        client,
        keys.supervisor,
        id="left",
        case_manager={"kind": "practitioner", "id": "cm-2"},
        team=[{"id": "m1", "role": "nurse", "party": {"kind": "practitioner", "id": "cm-1"}, "end": "2025-02-01"}],
    )
    listed = client.get("/api/v1/cases", headers=bearer(keys.cm1)).json()
    assert [i["case"]["id"] for i in listed["items"]] == ["mine", "team"]
    assert client.get("/api/v1/cases/team", headers=bearer(keys.cm1)).status_code == 200
    # Out of reach is indistinguishable from missing.
    hidden = client.get("/api/v1/cases/theirs", headers=bearer(keys.cm1))
    missing = client.get("/api/v1/cases/nothing", headers=bearer(keys.cm1))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == "no case theirs"
    assert client.get("/api/v1/cases/left", headers=bearer(keys.cm1)).status_code == 404


def test_a_team_membership_gives_access_from_its_start_only(client: TestClient, app: FastAPI, keys: Keys) -> None:
    """A membership entered ahead of its start is not "currently on the team": no access until that day."""
    create(
        client,
        keys.supervisor,
        id="joining",
        case_manager={"kind": "practitioner", "id": "cm-2"},
        team=[
            {
                "id": "m1",
                "role": "social-worker",
                "party": {"kind": "practitioner", "id": "cm-1"},
                "start": "2025-07-15",
            }
        ],
    )
    assert client.get("/api/v1/cases", headers=bearer(keys.cm1)).json()["items"] == []
    assert client.get("/api/v1/cases/joining", headers=bearer(keys.cm1)).status_code == 404
    contact = {"date": "2025-06-01", "mode": "phone"}
    assert client.post("/api/v1/cases/joining/contacts", json=contact, headers=bearer(keys.cm1)).status_code == 404
    app.state.clock = lambda: dt.date(2025, 7, 15)
    assert client.get("/api/v1/cases/joining", headers=bearer(keys.cm1)).status_code == 200


def test_a_case_manager_cannot_change_a_case_out_of_reach(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="theirs", case_manager={"kind": "practitioner", "id": "cm-2"})
    response = client.post(
        "/api/v1/cases/theirs/contacts", json={"date": "2025-03-01", "mode": "phone"}, headers=bearer(keys.cm1)
    )
    assert response.status_code == 404


def test_a_case_manager_cannot_create_a_case_for_another(client: TestClient, keys: Keys) -> None:
    from .conftest import new_case

    body = new_case(case_manager={"kind": "practitioner", "id": "cm-2"})
    assert client.post("/api/v1/cases", json=body, headers=bearer(keys.cm1)).status_code == 403


def test_a_programme_supervisor_sees_that_programme_only(client: TestClient, keys: Keys) -> None:
    create(client, keys.supervisor, id="hc")
    create(client, keys.supervisor, id="sw", programme="social-work")
    listed = client.get("/api/v1/cases", headers=bearer(keys.supervisor_hc)).json()
    assert [i["case"]["id"] for i in listed["items"]] == ["hc"]
    assert client.get("/api/v1/cases/sw", headers=bearer(keys.supervisor_hc)).status_code == 404
    assert client.get("/api/v1/cases/sw", headers=bearer(keys.supervisor_sw)).status_code == 200
    other = client.get("/api/v1/cases", params={"programme": "social-work"}, headers=bearer(keys.supervisor_hc))
    assert other.json()["items"] == []


def test_a_programme_supervisor_cannot_create_in_another_programme(client: TestClient, keys: Keys) -> None:
    from .conftest import new_case

    body = new_case(programme="social-work")
    assert client.post("/api/v1/cases", json=body, headers=bearer(keys.supervisor_hc)).status_code == 403


@pytest.mark.parametrize("programme", ["health_care", "", "HEALTH-CARE"])
def test_a_supervisor_key_of_an_unknown_programme_sees_nothing(
    client: TestClient, keys: Keys, api_store: Store, programme: str
) -> None:
    """A programme the build does not know (stored by hand, or dropped since) is not "every programme"."""
    create(client, keys.supervisor, id="hc")
    create(client, keys.supervisor, id="sw", programme="social-work")
    with api_store.session() as s:
        _, key = create_api_key(s, name="typo", role=ApiRole.SUPERVISOR, programme=programme)
    for path in ("/api/v1/cases", "/api/v1/cases/sw", "/api/v1/caseload", "/api/v1/audit", "/api/v1/me"):
        response = client.get(path, headers=bearer(key))
        assert response.status_code == 403, path
        assert response.json()["type"] == "urn:fhir-cm:problem:forbidden"
    assert client.get("/fhir/EpisodeOfCare", headers=bearer(key)).status_code == 403
    # A programme scopes supervisors only: a case manager's key naming one still works.
    with api_store.session() as s:
        _, cm = create_api_key(s, name="cm", role=ApiRole.CASE_MANAGER, practitioner_id="cm-1", programme=programme)
    assert [i["case"]["id"] for i in client.get("/api/v1/cases", headers=bearer(cm)).json()["items"]] == ["hc", "sw"]


@pytest.mark.parametrize(
    ("who", "expected"),
    [("service", 200), ("supervisor", 200), ("supervisor_hc", 403), ("cm1", 403), ("revoked", 401)],
)
def test_the_fhir_facade_is_for_service_keys(client: TestClient, keys: Keys, who: str, expected: int) -> None:
    response = client.get("/fhir/EpisodeOfCare", headers=bearer(getattr(keys, who)))
    assert response.status_code == expected
    if expected != 200:
        assert response.json()["resourceType"] == "OperationOutcome"


def test_sync_triggers_and_quarantine_are_for_supervisors(client: TestClient, keys: Keys) -> None:
    for path in ("/api/v1/sync/quarantine", "/api/v1/audit"):
        assert client.get(path, headers=bearer(keys.cm1)).status_code == 403
        assert client.get(path, headers=bearer(keys.supervisor)).status_code == 200
    assert client.post("/api/v1/sync/push", headers=bearer(keys.cm1)).status_code == 403


#: Answers the router or FastAPI gives before any route's authentication: an unknown path, a method
#: the path does not serve, a trailing slash redirected, a body that is not JSON (read first).
UNROUTED = [
    ("GET", "/api/v1/no-such-thing", None),
    ("GET", "/api/v1", None),
    ("POST", "/api/v1/cases/case-a/no-such-thing", None),
    ("DELETE", "/api/v1/cases", None),
    ("GET", "/api/v1/cases/", None),
    ("POST", "/api/v1/cases", b"{not json"),
]


@pytest.mark.parametrize(("method", "path", "body"), UNROUTED)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-key"}])
def test_without_a_valid_key_every_api_path_is_401_whether_it_exists_or_not(
    client: TestClient, keys: Keys, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> None:
    """Otherwise a stranger tells the API's paths and methods apart from a 401 (404, 405, 307, 422)."""
    known = client.get("/api/v1/cases", headers=headers)
    sent = {**headers, "Content-Type": "application/json"} if body else headers
    response = client.request(method, path, content=body, headers=sent, follow_redirects=False)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == known.headers["WWW-Authenticate"]
    assert response.json() | {"instance": None, "request_id": None} == known.json() | {
        "instance": None,
        "request_id": None,
    }
    head = client.head(path, headers=headers)
    assert head.status_code == 401 and head.headers["WWW-Authenticate"] == known.headers["WWW-Authenticate"]


def test_with_a_valid_key_an_unknown_api_path_stays_404_and_a_wrong_method_405(client: TestClient, keys: Keys) -> None:
    missing = client.get("/api/v1/no-such-thing", headers=bearer(keys.cm1))
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert client.head("/api/v1/no-such-thing", headers=bearer(keys.cm1)).status_code == 404
    wrong = client.delete("/api/v1/cases", headers=bearer(keys.cm1))
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, HEAD, POST"
    slash = client.get("/api/v1/cases/", headers=bearer(keys.cm1), follow_redirects=False)
    assert slash.status_code == 307
    bad = client.post(
        "/api/v1/cases", content=b"{not json", headers={**bearer(keys.cm1), "Content-Type": "application/json"}
    )
    assert bad.status_code == 422


def test_the_open_paths_stay_open(client: TestClient) -> None:
    """Health, readiness, metrics, the API's description and paths outside the API need no key."""
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path
    assert client.get("/no-such-thing").status_code == 404
    assert client.get("/api/v10/cases").status_code == 404
