"""An incremental export's ``deleted`` list: a deleted Encounter or Condition stops counting.

Bulk Data (STU2+) lists, for a ``_since`` export, what was deleted since then as Bundles of
``DELETE Type/id`` requests. No server here emits them, so the exchange is a respx fixture shaped by
the specification; the store is real.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import respx

from fhir_cm.fhir import AsyncFhirClient, BulkSettings
from fhir_cm.identify import screen_population
from fhir_cm.store import list_candidates, open_store

from .population import profile_resources

BASE = "https://ehr.example/fhir"
STATUS = f"{BASE}/$export-poll-status?_jobId=1"
FILES = "https://files.example"
TODAY = dt.date(2026, 6, 1)
FAST = BulkSettings(poll_interval=0.01, max_retry_after=0.01)


def ndjson(*items: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


def export(
    mock: respx.MockRouter, output: dict[str, bytes], deleted: bytes | None = None, *, errors: bytes | None = None
) -> None:
    mock.get(url__startswith=f"{BASE}/$export?").mock(
        return_value=httpx.Response(202, headers={"Content-Location": STATUS})
    )
    manifest = {
        "transactionTime": "2026-06-01T10:00:00Z",
        "request": f"{BASE}/$export",
        "requiresAccessToken": False,
        "output": [{"type": t, "url": f"{FILES}/{t}.ndjson"} for t in output],
        "error": [{"type": "OperationOutcome", "url": f"{FILES}/errors.ndjson"}] if errors is not None else [],
        **({"deleted": [{"type": "Bundle", "url": f"{FILES}/deleted.ndjson"}]} if deleted is not None else {}),
    }
    mock.get(STATUS).mock(return_value=httpx.Response(200, json=manifest))
    mock.delete(STATUS).mock(return_value=httpx.Response(202))
    for rtype, body in output.items():
        mock.get(f"{FILES}/{rtype}.ndjson").mock(return_value=httpx.Response(200, content=body))
    if deleted is not None:
        mock.get(f"{FILES}/deleted.ndjson").mock(return_value=httpx.Response(200, content=deleted))
    if errors is not None:
        mock.get(f"{FILES}/errors.ndjson").mock(return_value=httpx.Response(200, content=errors))


async def test_what_an_incremental_export_says_was_deleted_no_longer_counts(tmp_path: Path) -> None:
    admitted = profile_resources("p-adm", "admissions", TODAY)
    high_risk = profile_resources("p-risk", "high-risk", TODAY)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in [*admitted, *high_risk]:
        by_type.setdefault(r["resourceType"], []).append(r)
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            with respx.mock() as mock:
                export(mock, {t: ndjson(*rs) for t, rs in by_type.items()})
                await screen_population(store, client, as_of=TODAY, bulk_settings=FAST)
            with store.session(read_only=True) as s:
                assert {c.patient_id for c in list_candidates(s, BASE)} == {"p-adm", "p-risk"}

            gone_encounter = next(r for r in admitted if r["resourceType"] == "Encounter")
            gone_condition = next(r for r in high_risk if r["resourceType"] == "Condition")
            deletions = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {"request": {"method": "DELETE", "url": f"Encounter/{gone_encounter['id']}"}},
                    {"request": {"method": "DELETE", "url": f"{BASE}/Condition/{gone_condition['id']}"}},
                ],
            }
            with respx.mock() as mock:
                export(mock, {}, deleted=ndjson(deletions))
                report = await screen_population(store, client, as_of=TODAY, bulk_settings=FAST)
    assert report.since == "2026-06-01T10:00:00Z" and report.deleted == 2
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store, store.session(read_only=True) as s:
        assert list_candidates(s, BASE) == []  # one admission left, and no high-risk condition
