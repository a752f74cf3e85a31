"""A follow-up the hospital wrote as due in a month is said as that month on the cards a clinician reads.

The cards said "next follow-up due 2026-06-30" where the hospital's ServiceRequest said June: a deadline
nobody set, in the EHR itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from fhir_cm.config import Settings
from fhir_cm.interchange import import_files
from fhir_cm.mapping import case_to_bundle
from fhir_cm.store import Store

from .conftest import TODAY, Signer
from tests.identify.population import patient

from .test_cds_hooks import DISCHARGE, PV, call, eligible_prefetch, open_case


def _as_the_hospital_wrote_it(store: Store, settings: Settings, tmp_path: Path, pid: str) -> None:
    """``open_case``'s case imported as the hospital's resources, the follow-up to be done in June."""
    case = open_case(store, pid)  # saved as ours first; the hospital's resources then say June
    bundle = case_to_bundle(case, "R4", settings.identifier_system)
    entries: list[dict[str, Any]] = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "ServiceRequest":
            resource["occurrenceDateTime"] = TODAY.strftime("%Y-%m")
        entries.append({"fullUrl": entry["fullUrl"], "resource": resource})
    path = tmp_path / "hospital.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    import_files(store, [path], settings)


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
