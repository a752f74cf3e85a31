"""The tracker asks for the Locations of a patient's Encounters unless the server says it cannot.

Where an Encounter's care setting is said by its Location's type (a hospice ward booked as an
inpatient class), the tracker needs the Location: it asks for it with ``_include=Encounter:location``.
It asked only when the CapabilityStatement listed that include; a statement silent on includes (no
``searchInclude`` at all, as many are) made the stay an acute hospital stay. The real server's own
statement is given to the client without its ``searchInclude`` lists.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting, Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient, Capabilities
from fhir_cm.store import Store, get_case, open_store, save_case
from fhir_cm.sync import track_transitions
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server

POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"


def silent_on_includes(statement: dict[str, Any]) -> dict[str, Any]:
    quiet = copy.deepcopy(statement)
    for entry in quiet["rest"][0].get("resource") or []:
        entry.pop("searchInclude", None)
    return quiet


async def test_a_stay_whose_location_says_hospice_is_a_hospice_stay_when_the_statement_is_silent_on_includes(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    provider = f"hosp-{tag}"
    await put_organisations(raw, provider)
    case = await enrol(store, raw, settings, tag)
    hospice = {
        "resourceType": "Location",
        "id": f"hospice-{tag}",
        "type": [{"coding": [{"system": POS, "code": "34"}]}],
    }
    await raw.update(hospice, versioned=False)
    stay = encounter(case.patient.id, "IMP", "2024-03-01", "2024-03-09", provider)
    stay["location"] = [{"location": {"reference": f"Location/hospice-{tag}"}}]
    created = await raw.create(stay)
    caps = Capabilities.from_statement(silent_on_includes(dict((await raw.capabilities()).statement)))

    async with faulty_proxy(fhir_server.removesuffix("/fhir"), rate=0.0) as (root, proxy):
        async with AsyncFhirClient(f"{root}/fhir", enforce_capabilities=False, capabilities=caps) as client:
            report = await track_transitions(
                store, client, settings.model_copy(update={"fhir_base": f"{root}/fhir"}), case_id=case.id
            )

    assert report.failed == {}
    searches = [line for line in proxy.seen if line.startswith("GET /fhir/Encounter?")]
    assert searches and all("_include=Encounter%3Alocation" in line for line in searches), searches
    with store.session(read_only=True) as s:
        tracked = get_case(s, case.id)
    assert tracked is not None
    assert [(s.id, s.setting) for s in tracked.stays] == [(created.id, CareSetting.HOSPICE)]


async def test_a_server_refusing_the_include_it_did_not_rule_out_is_asked_without_it(tmp_path: Path) -> None:
    # A statement silent on includes, from a server that answers 400 to one all the same: the
    # tracker reads the Encounters without their Locations rather than failing every case.
    base = "http://ehr.example/fhir"
    statement = {
        "resourceType": "CapabilityStatement",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "resource": [{"type": "Encounter", "searchParam": [{"name": "patient"}]}]}],
    }
    refused = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}
    settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", fhir_base=base, identifier_system="urn:x")
    cases = [
        Case(
            id=f"case-{n}",
            programme="health-care",
            period=Period(start=dt.date(2024, 2, 20)),
            patient=Party(kind="patient", id=f"pat-{n}"),
        )
        for n in range(2)
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        if "_include" in request.url.params:
            return httpx.Response(400, json=refused)
        patient = request.url.params["patient"].removeprefix("Patient/")
        stay = {**encounter(patient, "IMP", "2024-03-01", "2024-03-05", "hosp-1"), "id": f"enc-{patient}"}
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": stay}]})

    with open_store(settings.database_url) as store, respx.mock(base_url=base) as mock:
        with store.session() as s:
            for case in cases:
                save_case(s, case, enqueue=False)
        searches = mock.get("/Encounter").mock(side_effect=answer)
        # The tracker reads the patients first (a record merged into another is followed): none is.
        mock.get("/Patient").mock(
            side_effect=lambda request: httpx.Response(
                200,
                json={
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [
                        {"resource": {"resourceType": "Patient", "id": pid}}
                        for pid in request.url.params["_id"].split(",")
                    ],
                },
            )
        )
        async with AsyncFhirClient(
            base, enforce_capabilities=False, capabilities=Capabilities.from_statement(statement)
        ) as client:
            report = await track_transitions(store, client, settings)
        with store.session(read_only=True) as s:
            stays = {c.id: [(st.id, st.setting) for st in get_case(s, c.id).stays] for c in cases}  # type: ignore[union-attr]

    assert report.failed == {}
    assert stays == {c.id: [(f"enc-{c.patient.id}", CareSetting.ACUTE_HOSPITAL)] for c in cases}
    asked = ["_include" in call.request.url.params for call in searches.calls]
    assert asked == [True, False, False]  # refused once, then never asked again
