"""A follow-up the hospital wrote as due in a month is said as that month on the cards a clinician reads.

The cards said "next follow-up due 2026-06-30" where the hospital's ServiceRequest said June: a deadline
nobody set, in the EHR itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.interchange import import_files
from fhir_cm.mapping import case_to_bundle
from fhir_cm.store import Store

from .conftest import TODAY, Signer
from tests.identify.population import patient

from .test_cds_hooks import DISCHARGE, PV, call, eligible_prefetch, open_case


def _follow_up_in_june(resource: dict[str, Any]) -> None:
    if resource["resourceType"] == "ServiceRequest":
        resource["occurrenceDateTime"] = TODAY.strftime("%Y-%m")


def _as_the_hospital_wrote_it(
    store: Store,
    settings: Settings,
    tmp_path: Path,
    pid: str,
    edit: Callable[[dict[str, Any]], None] = _follow_up_in_june,
) -> Case:
    """``open_case``'s case imported as the hospital's resources, each as ``edit`` rewrites it (by
    default: the follow-up to be done in June)."""
    case = open_case(store, pid)  # saved as ours first; the hospital's resources then say otherwise
    bundle = case_to_bundle(case, "R4", settings.identifier_system)
    entries: list[dict[str, Any]] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        edit(resource)
        entries.append({"fullUrl": entry["fullUrl"], "resource": resource})
    path = tmp_path / "hospital.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    import_files(store, [path], settings)
    return case


def test_the_cards_say_a_follow_up_due_in_a_month_as_written(
    cds_client: TestClient, cds_store: Store, cds_settings: Settings, signer: Signer, tmp_path: Path
) -> None:
    _as_the_hospital_wrote_it(cds_store, cds_settings, tmp_path, "p-month")
    month = TODAY.strftime("%Y-%m")
    viewed = cds_client.post(PV, json=call("p-month", **eligible_prefetch("p-month")), headers=signer.headers(PV))
    assert viewed.status_code == 200, viewed.text
    assert [c["summary"] for c in viewed.json()["cards"]] == [
        f"Open case with Dana Reed; next follow-up due {month}",
        f"Transition plan needed: case with Dana Reed; follow-up due {month}",
    ]
    body = call("p-month", "encounter-discharge", patient=patient("p-month"))
    discharged = cds_client.post(DISCHARGE, json=body, headers=signer.headers(DISCHARGE))
    assert discharged.status_code == 200, discharged.text
    [card] = discharged.json()["cards"]
    assert card["summary"] == f"Transition plan needed: case with Dana Reed; follow-up due {month}"


def test_the_plan_card_says_a_discharge_in_a_month_as_written(
    cds_client: TestClient, cds_store: Store, cds_settings: Settings, signer: Signer, tmp_path: Path
) -> None:
    """The hospital's Encounter says the stay ended in May: the card said "on 2026-05-31"."""
    month = "2026-05"  # open_case's discharge is three days before TODAY (2026-06-01)

    def ended_in_may(resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "Encounter":
            resource["period"]["end"] = month

    case = _as_the_hospital_wrote_it(cds_store, cds_settings, tmp_path, "p-may", ended_in_may)
    assert [s.end.strftime("%Y-%m") for s in case.stays if s.end] == [month]

    viewed = cds_client.post(PV, json=call("p-may", **eligible_prefetch("p-may")), headers=signer.headers(PV))
    assert viewed.status_code == 200, viewed.text
    [plan] = [c for c in viewed.json()["cards"] if c["summary"].startswith("Transition plan needed")]
    assert plan["detail"].startswith(f"Discharged from acute-hospital to home on {month}. "), plan["detail"]


def test_the_open_case_card_says_a_case_begun_in_a_month_as_written(
    cds_client: TestClient, cds_store: Store, cds_settings: Settings, signer: Signer, tmp_path: Path
) -> None:
    """The hospital's EpisodeOfCare says the case began in April: the card said "since 2026-04-01"."""
    month = "2026-04"  # open_case's case began sixty days before TODAY (2026-06-01)

    def begun_in_april(resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "EpisodeOfCare":
            resource["period"]["start"] = month
            resource.pop("statusHistory", None)  # no day of it to say which day of April

    _as_the_hospital_wrote_it(cds_store, cds_settings, tmp_path, "p-april", begun_in_april)
    viewed = cds_client.post(PV, json=call("p-april", **eligible_prefetch("p-april")), headers=signer.headers(PV))
    assert viewed.status_code == 200, viewed.text
    [card] = [c for c in viewed.json()["cards"] if c["summary"].startswith("Open case")]
    assert card["detail"].endswith(f"status: active since {month}."), card["detail"]
