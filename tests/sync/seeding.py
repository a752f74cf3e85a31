"""Putting cases and Encounters on the real test server, as another system would, for pull tests.

Each test gets its own identifier system (``tests/sync/conftest.py``) and patient, so the
session-wide server can hold every test's data without one test seeing another's. The tests use the
``raw`` client there: sekmet leaves Goal and CareTeam out of its CapabilityStatement, and a client
enforcing it would refuse to pull them.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.fhir import BundleEntry
from fhir_cm.mapping import case_to_bundle, resource_key
from fhir_cm.sync._parties import case_parties

__all__ = ["fresh_settings", "put_organisations", "seed_case", "seed_parties"]


def fresh_settings(database_url: str, fhir_base: str) -> Settings:
    """Settings with an identifier system of this test's own."""
    return Settings(
        database_url=database_url,
        fhir_base=fhir_base,
        identifier_system=f"urn:fhir-cm:test:{uuid.uuid4().hex}",
    )


async def seed_case(client: AsyncFhirClient, case: Case, system: str) -> dict[str, dict[str, Any]]:
    """Create a case's resources on the server in one transaction; returns them by business key value.

    Plain creates (no ``ifNoneExist``): the identifier system is new, so nothing can match, and
    sekmet cannot search Goal or CareTeam by identifier anyway. The people and organisations the
    case names are put there first under their own ids, as the EHR that owns them would hold them
    (HAPI refuses references to resources it does not have).
    """
    await seed_parties(client, case)
    bundle = case_to_bundle(case, "R4", system)
    for entry in bundle["entry"]:
        entry["request"].pop("ifNoneExist", None)
    answer = await client.post_bundle(bundle, safe=False)
    created: dict[str, dict[str, Any]] = {}
    for entry in answer.get("entry") or []:
        location = (entry.get("response") or {}).get("location") or ""
        parts = location.removeprefix(client.base_url).strip("/").split("/")
        if len(parts) >= 2:
            rtype, rid = parts[0], parts[1]
            resource = await client.read(rtype, rid)
            key = resource_key(resource, system)
            if key is not None:
                created[f"{key.type}/{key.value}"] = resource
    return created


async def seed_parties(client: AsyncFhirClient, case: Case) -> None:
    """The case's patient, practitioners, organisations and related persons, as the EHR's records
    (``PUT Type/<party id>``): what a case names exists on a hospital's server before the case does."""
    patient = {"resourceType": "Patient", "id": case.patient.id}
    entries = [BundleEntry("PUT", f"Patient/{case.patient.id}", patient)]
    for (rtype, rid), party in case_parties(case).items():
        if (rtype, rid) == ("Patient", case.patient.id):
            continue
        resource: dict[str, Any] = {"resourceType": rtype, "id": rid}
        if rtype == "RelatedPerson":
            resource["patient"] = {"reference": f"Patient/{case.patient.id}"}
        if party.name:
            resource["name"] = party.name if rtype == "Organization" else [{"text": party.name}]
        entries.append(BundleEntry("PUT", f"{rtype}/{rid}", resource))
    await client.transaction(entries)


async def put_organisations(client: AsyncFhirClient, *ids: str) -> None:
    """The hospital's own Organization records, which its Encounters name as their service provider."""
    await client.transaction(
        [BundleEntry("PUT", f"Organization/{i}", {"resourceType": "Organization", "id": i}) for i in ids]
    )
