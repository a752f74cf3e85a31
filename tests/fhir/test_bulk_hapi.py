"""Bulk ``$export`` against the real HAPI server: a system-level export, ``_since`` from the last
``transactionTime``, and the paged-search fallback reading the same resources. (Each HAPI export job
takes a minute or more on two cores, so the Patient- and Group-level kick-offs are shown with respx.)"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from fhir_cm.fhir import AsyncFhirClient, BulkExport, BulkRequest, BulkSettings, read_population

pytestmark = pytest.mark.server
TYPES = ["Patient", "Encounter", "Condition"]
FAST = BulkSettings(poll_interval=0.25, max_retry_after=0.25, max_wait=300.0)


async def _ours(population: Any, patients: set[str]) -> dict[str, set[str]]:
    """What the export holds of this test's patients, by type (the server is shared by the session)."""
    found: dict[str, set[str]] = {t: set() for t in TYPES}
    async for r in population.resources():
        rtype = r["resourceType"]
        if rtype == "Patient" and r["id"] in patients:
            found[rtype].add(r["id"])
        elif (
            rtype in ("Encounter", "Condition") and r.get("subject", {}).get("reference", "").split("/")[-1] in patients
        ):
            found[rtype].add(r["id"])
    return found


async def test_export_reads_exactly_what_was_written_then_only_what_changed(hapi_r4: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    async with AsyncFhirClient(hapi_r4.base_url, enforce_capabilities=False) as fhir:
        patients = [f"bulk-{tag}-{n}" for n in range(3)]
        encounters, conditions = set(), {}
        for p in patients:
            await fhir.update({"resourceType": "Patient", "id": p, "active": True}, versioned=False)
            encounters.add(
                str(
                    (
                        await fhir.create(
                            {
                                "resourceType": "Encounter",
                                "status": "finished",
                                "subject": {"reference": f"Patient/{p}"},
                                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                            }
                        )
                    ).id
                )
            )
            made = await fhir.create(
                {
                    "resourceType": "Condition",
                    "subject": {"reference": f"Patient/{p}"},
                    "code": {"text": "heart failure"},
                }
            )
            conditions[p] = str(made.id)

        async with read_population(fhir, BulkRequest(types=TYPES), settings=FAST) as export:
            assert isinstance(export, BulkExport)
            everything = await _ours(export, set(patients))
            since = export.transaction_time
        assert everything == {"Patient": set(patients), "Encounter": encounters, "Condition": set(conditions.values())}

        async with read_population(fhir, BulkRequest(types=TYPES), use_export=False) as searched:
            assert await _ours(searched, set(patients)) == everything  # the fallback reads the same

        changed = await fhir.read("Condition", conditions[patients[2]])
        changed["code"] = {"text": "heart failure, worsening"}
        await fhir.update(changed)
        async with read_population(fhir, BulkRequest(types=TYPES, since=since), settings=FAST) as delta:
            again = await _ours(delta, set(patients))
        assert again == {"Patient": set(), "Encounter": set(), "Condition": {conditions[patients[2]]}}


async def test_a_post_kick_off_says_its_parameters_are_fhir_json(hapi_r4: Any) -> None:
    """``FHIR_CM_BULK_KICK_OFF=POST`` (Bulk Data STU4 servers) POSTed its Parameters with no Content-Type,
    which HAPI refuses (HAPI-0448), as would any server reading the body by its type: no export ever ran."""
    tag = uuid.uuid4().hex[:8]
    async with AsyncFhirClient(hapi_r4.base_url, enforce_capabilities=False) as fhir:
        await fhir.update({"resourceType": "Patient", "id": f"post-{tag}", "active": True}, versioned=False)
        post = FAST.model_copy(update={"kick_off": "POST"})
        async with read_population(fhir, BulkRequest(types=["Patient"]), settings=post, use_export=True) as export:
            ids = {r["id"] async for r in export.resources()}
    assert f"post-{tag}" in ids


async def test_a_post_kick_off_gives_since_as_the_instant_the_operation_defines(hapi_r4: Any) -> None:
    """Bulk Data STU4 servers take the kick-off as a POSTed Parameters (``FHIR_CM_BULK_KICK_OFF=POST``), whose
    ``_since`` the operation defines as an instant. It went as a valueString, which HAPI refuses (HAPI-0362:
    a parameter of the wrong type), so every incremental run fell back to paged searches."""
    tag = uuid.uuid4().hex[:8]
    async with AsyncFhirClient(hapi_r4.base_url, enforce_capabilities=False) as fhir:
        old = await fhir.update({"resourceType": "Patient", "id": f"old-{tag}", "active": True}, versioned=False)
        assert old.resource is not None
        # the server's own stamp, not this machine's clock: `since` is just after the old write
        since = dt.datetime.fromisoformat(old.resource["meta"]["lastUpdated"]) + dt.timedelta(milliseconds=1)
        new = await fhir.update({"resourceType": "Patient", "id": f"new-{tag}", "active": True}, versioned=False)
        assert new.resource is not None and dt.datetime.fromisoformat(new.resource["meta"]["lastUpdated"]) >= since
        post = FAST.model_copy(update={"kick_off": "POST"})
        request = BulkRequest(types=["Patient"], since=since)
        async with read_population(fhir, request, settings=post, use_export=True) as export:
            ids = {r["id"] async for r in export.resources()}
    assert {f"old-{tag}", f"new-{tag}"} & ids == {f"new-{tag}"}
