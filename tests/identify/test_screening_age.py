"""The age rules on a real server: the Patients' birth dates (full and partial) read with the
population, ages taken on the screening's day (``as_of``, not the clock), no birth date in the logs;
and a store screened before Patient facts kept a birth date reads everything once."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any

import pytest

from fhir_cm.fhir import AsyncFhirClient, BulkSettings
from fhir_cm.identify import screen_population
from fhir_cm.store import Store, list_candidates, open_store, set_watermark

from .population import condition, encounter, patient, transaction

pytestmark = pytest.mark.server
AS_OF = dt.date(2025, 3, 15)  # a past day: today, everyone here is older
EXPORT = BulkSettings(poll_interval=0.25, max_retry_after=0.25, max_wait=300)


@pytest.fixture
def store(tmp_path: Any) -> Any:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def seeded(prefix: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Patients by birth date, each with two admissions before ``AS_OF`` (or, for the children, a cancer)."""
    births = {
        f"{prefix}-65-today": "1960-03-15",
        f"{prefix}-65-tomorrow": "1960-03-16",
        f"{prefix}-year-65-or-66": "1959",
        f"{prefix}-year-64-or-65": "1960",
        f"{prefix}-month-65": "1960-02",
        f"{prefix}-none": "",
        f"{prefix}-child-17": "2007-03-16",
        f"{prefix}-child-year-17-or-18": "2007",
    }
    resources: list[dict[str, Any]] = []
    for n, (pid, birth) in enumerate(births.items()):
        resources.append({**patient(pid), **({"birthDate": birth} if birth else {})})
        if "child" in pid:
            resources.append(condition(pid, "C91.00", rid=f"{pid}-c"))
        else:
            resources += [
                encounter(pid, "IMP", AS_OF - dt.timedelta(days=200 + n), 3, rid=f"{pid}-e1"),
                encounter(pid, "IMP", AS_OF - dt.timedelta(days=60 + n), 2, rid=f"{pid}-e2"),
            ]
    return births, resources


def age_reasons(store: Store, server: str, prefix: str) -> dict[str, str]:
    with store.session(read_only=True) as s:
        found = list_candidates(s, server, limit=100_000)
    return {
        c.patient_id.removeprefix(prefix + "-"): r["text"]
        for c in found
        if c.patient_id.startswith(prefix)
        for r in c.reasons
        if r["rule"] in ("older-adult", "child-complex-condition")
    }


async def test_ages_read_from_the_export_on_the_screening_day(
    fhir_server: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"age-{uuid.uuid4().hex[:8]}"
    births, resources = seeded(prefix)
    caplog.set_level(logging.DEBUG)
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])
        report = await screen_population(store, fhir, use_export=True, as_of=AS_OF, bulk_settings=EXPORT)
        server = fhir.base_url
    assert report.source == "export"
    admissions = "2 inpatient admissions in 365 days"
    assert age_reasons(store, server, prefix) == {
        "65-today": f"aged 65, with {admissions}",
        "year-65-or-66": f"aged 65 or 66, with {admissions}",
        "month-65": f"aged 65, with {admissions}",
        "child-17": "a child aged 17, with a high-risk condition (http://hl7.org/fhir/sid/icd-10-cm|C91.00)",
    }
    logged = caplog.text
    # A birth date is PHI. Looked for as a value of its own: a year ("1960") found inside an export's
    # random id or a uuid's group is not one.
    assert not [b for b in births.values() if b and re.search(rf"(?<![\w-]){re.escape(b)}(?!\w)", logged)]


async def test_a_store_screened_before_birth_dates_were_kept_reads_everyone_once(
    fhir_server: str, store: Store
) -> None:
    """Its watermark said everything up to now was read, and its Patient facts hold no birth date: an
    incremental run would have read none of the unchanged Patients, every one of them left ageless."""
    prefix = f"agu-{uuid.uuid4().hex[:8]}"
    _, resources = seeded(prefix)
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        await fhir.transaction(transaction(resources)["entry"])
        server = fhir.base_url
        with store.session() as s:  # what the earlier generation left: its watermark, after the writes
            set_watermark(s, server, "identify:system", dt.datetime.now(dt.UTC).isoformat())
        report = await screen_population(store, fhir, use_export=False, as_of=AS_OF)
    assert report.since is None
    assert "65-today" in age_reasons(store, server, prefix)
