"""An outside party — another server's practitioner on the care team, an episode managed from another
hospital — is shown as such and is never the local practitioner of the same id: it gives that
practitioner's key no access, puts the case in no local caseload, and a hand-over to the local one
is a hand-over."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient

from fhir_cm.domain import Case, Party, Period, TeamMember
from fhir_cm.store import Store, save_case

from .conftest import Keys, bearer

OTHER = "https://other.example/fhir"
BASE = "/api/v1/cases/case-x"


def pulled(store: Store, **values: Any) -> None:
    """A case as a pull brought it in: another server's practitioners where the hospital named them."""
    case = Case(
        id="case-x",
        programme="health-care",
        period=Period(start=dt.date(2025, 1, 10)),
        patient=Party(kind="patient", id="patient-1"),
        **values,
    )
    with store.session() as s:
        save_case(s, case, enqueue=False)


def far(practitioner_id: str, name: str | None = None) -> dict[str, Any]:
    return {"kind": "practitioner", "id": practitioner_id, "name": name, "server": OTHER}


def test_an_outside_member_of_a_keys_practitioner_id_gives_that_key_no_access(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    gp = Party.model_validate(far("cm-2", "Dr Elsewhere"))
    pulled(api_store, team=[TeamMember(id="tm-gp", role="primary-care", party=gp, start=dt.date(2025, 1, 10))])

    assert client.get(BASE, headers=bearer(keys.cm2)).status_code == 404
    shown = client.get(BASE, headers=bearer(keys.supervisor))
    assert shown.status_code == 200
    assert shown.json()["case"]["team"][0]["party"] == far("cm-2", "Dr Elsewhere")


def test_an_outside_case_manager_puts_the_case_in_no_local_caseload_but_a_group_of_its_own(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    pulled(api_store, case_manager=Party.model_validate(far("cm-1", "Dr Far Away")))

    assert client.get(BASE, headers=bearer(keys.cm1)).status_code == 404
    listed = client.get("/api/v1/cases", params={"case_manager": "cm-1"}, headers=bearer(keys.supervisor))
    assert listed.json()["items"] == []
    mine = client.get("/api/v1/caseload", headers=bearer(keys.cm1)).json()["managers"]
    assert [c["case_id"] for m in mine for c in m["cases"]] == []
    load = client.get("/api/v1/caseload", headers=bearer(keys.supervisor)).json()["managers"]
    assert [(m["case_manager"], m["case_manager_server"], m["case_manager_name"]) for m in load] == [
        ("cm-1", OTHER, "Dr Far Away")
    ]


def test_a_case_manager_may_not_create_a_case_managed_by_an_outside_namesake(client: TestClient, keys: Keys) -> None:
    body = {
        "programme": "health-care",
        "start": "2025-01-10",
        "patient": {"kind": "patient", "id": "patient-1"},
        "case_manager": far("cm-1"),
    }
    assert client.post("/api/v1/cases", json=body, headers=bearer(keys.cm1)).status_code == 403


def test_handing_an_outside_managed_case_to_the_local_namesake_is_a_hand_over(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    outside = Party.model_validate(far("cm-1", "Dr Far Away"))
    pulled(
        api_store,
        case_manager=outside,
        team=[TeamMember(id="tm-far", role="case-manager", party=outside, start=dt.date(2025, 1, 10))],
    )
    # Joining the team as its case manager is a hand-over, whatever the id.
    joining = {"role": "case-manager", "party": {"kind": "practitioner", "id": "cm-1"}}
    refused = client.post(f"{BASE}/team", json=joining, headers=bearer(keys.supervisor))
    assert refused.status_code == 409 and "handing it over" in refused.json()["detail"]

    body = {"case_manager": {"kind": "practitioner", "id": "cm-1"}}
    answer = client.patch(BASE, json=body, headers=bearer(keys.supervisor))

    assert answer.status_code == 200, answer.text
    case = answer.json()["case"]
    assert case["case_manager"] == {"kind": "practitioner", "id": "cm-1", "name": None}  # the local one
    managing = {(m["party"].get("server"), m["end"]) for m in case["team"] if m["role"] == "case-manager"}
    assert managing == {(None, None), (OTHER, "2025-06-29")}  # the outside one managed it until yesterday
    assert client.get(BASE, headers=bearer(keys.cm1)).status_code == 200


def test_a_referral_in_an_outside_managed_case_is_not_asked_for_by_the_outside_manager(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    pulled(api_store, case_manager=Party.model_validate(far("cm-1", "Dr Far Away")))
    referral = {"id": "r1", "kind": "food", "service": "Meals", "authored": "2025-02-01"}

    refused = client.post(f"{BASE}/referrals", json=referral, headers=bearer(keys.supervisor))
    assert refused.status_code == 409 and refused.json()["field"] == "requester"
    asker = {"kind": "organisation", "id": "cm-unit"}
    made = client.post(f"{BASE}/referrals", json={**referral, "requester": asker}, headers=bearer(keys.supervisor))
    assert made.status_code == 201, made.text
    assert made.json()["requester"]["id"] == "cm-unit"
