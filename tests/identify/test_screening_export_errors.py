"""An export whose manifest lists ``error`` files: what the server says it could not export.

Bulk Data puts errors, warnings and information about an export in the manifest's ``error`` files
(OperationOutcomes), not in its output. An ``error`` or ``fatal`` issue means resources are missing
from the output; taking it as complete would move the watermark past them, and the next incremental
run (``_since`` then) would never read them. Warnings and information are no such loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import respx

from fhir_cm.fhir import AsyncFhirClient, BulkExportFailed
from fhir_cm.identify import screen_population, watermark_key
from fhir_cm.store import get_watermark, list_candidates, open_store

from .population import profile_resources
from .test_screening_deleted import BASE, FAST, TODAY, export, ndjson


def outcome(severity: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": "exception", "diagnostics": text}],
    }


def by_type(resources: list[dict[str, Any]]) -> dict[str, bytes]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        grouped.setdefault(r["resourceType"], []).append(r)
    return {t: ndjson(*rs) for t, rs in grouped.items()}


async def test_an_export_the_server_could_not_complete_fails_and_the_watermark_stays(tmp_path: Path) -> None:
    # The Conditions could not be exported: the high-risk patient's diagnosis is missing.
    seen = [r for r in profile_resources("p-risk", "high-risk", TODAY) if r["resourceType"] != "Condition"]
    errors = ndjson(outcome("error", "Condition export failed: database timeout"))
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            with respx.mock(assert_all_called=False) as mock:  # the output is not even downloaded
                export(mock, by_type(seen), errors=errors)
                with pytest.raises(BulkExportFailed, match="database timeout"):
                    await screen_population(store, client, as_of=TODAY, bulk_settings=FAST)
        with store.session(read_only=True) as s:
            assert get_watermark(s, BASE, watermark_key(None)) is None  # the next run reads it all again


async def test_warnings_and_information_in_the_error_files_are_no_failure(tmp_path: Path) -> None:
    resources = profile_resources("p-risk", "high-risk", TODAY)
    errors = ndjson(outcome("warning", "1 Observation skipped: no subject"), outcome("information", "done"))
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            with respx.mock() as mock:
                export(mock, by_type(resources), errors=errors)
                report = await screen_population(store, client, as_of=TODAY, bulk_settings=FAST)
        assert report.transaction_time == "2026-06-01T10:00:00Z"
        with store.session(read_only=True) as s:
            assert [c.patient_id for c in list_candidates(s, BASE)] == ["p-risk"]
            assert get_watermark(s, BASE, watermark_key(None)) == "2026-06-01T10:00:00Z"
