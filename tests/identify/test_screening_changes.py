"""An incremental read where a resource stops counting: a visit cancelled, a diagnosis resolved or
refuted after the first run. The resource comes back in the second delivery but tells screening
nothing now, so the fact the first run kept of it must go — else the patient stays a candidate for a
reason the hospital has withdrawn."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson

from fhir_cm.identify import screen_files
from fhir_cm.store import Store, list_candidates, open_store

from .population import condition, encounter, patient

SERVER = "https://ehr.example.org/fhir"
TODAY = dt.date.today()


def write(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    return path


def reasons(store: Store) -> dict[str, set[str]]:
    with store.session(read_only=True) as s:
        return {c.patient_id: {r["reason"] for r in c.reasons} for c in list_candidates(s, SERVER, limit=100)}


async def test_a_resource_that_no_longer_counts_takes_its_reason_away(tmp_path: Path) -> None:
    ed = [encounter("ed", "EMER", TODAY - dt.timedelta(days=10 * k), rid=f"ed-{k}") for k in range(3)]
    chronic = [condition("cc", code, rid=f"cc-{code}") for code in ("E11", "I10", "J44")]
    risky = condition("hr", "C50.9", rid="hr-1")
    first = [patient("ed"), patient("cc"), patient("hr"), *ed, *chronic, risky]
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        await screen_files(store, SERVER, [write(tmp_path / "first.ndjson", first)], as_of=TODAY)
        assert reasons(store) == {
            "ed": {"frequent-ed-visits"},
            "cc": {"multiple-comorbidities"},
            "hr": {"complex-condition"},
        }

        changed = [
            {**ed[0], "status": "cancelled"},
            {**chronic[0], "clinicalStatus": {"coding": [{"code": "resolved"}]}},
            {**risky, "verificationStatus": {"coding": [{"code": "refuted"}]}},
        ]
        report = await screen_files(store, SERVER, [write(tmp_path / "second.ndjson", changed)], as_of=TODAY)
        assert report.read == {"Encounter": 1, "Condition": 2} and report.facts == 0
        assert reasons(store) == {}
        assert report.patients == 3  # everyone ranked again from the store


async def test_a_patient_left_with_no_fact_at_all_is_no_candidate_any_more(tmp_path: Path) -> None:
    # An export of Conditions only (no Patient file): the diagnosis is the patient's one fact.
    risky = condition("only", "C50.9", rid="only-1")
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        await screen_files(store, SERVER, [write(tmp_path / "first.ndjson", [risky])], as_of=TODAY)
        assert reasons(store) == {"only": {"complex-condition"}}

        refuted = {**risky, "verificationStatus": {"coding": [{"code": "refuted"}]}}
        report = await screen_files(store, SERVER, [write(tmp_path / "second.ndjson", [refuted])], as_of=TODAY)
        assert report.patients == 0
        assert reasons(store) == {}


async def test_a_patient_merged_into_another_record_since_the_last_run_drops_out(tmp_path: Path) -> None:
    risky = condition("dup", "C50.9", rid="dup-1")
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        await screen_files(store, SERVER, [write(tmp_path / "first.ndjson", [patient("dup"), risky])], as_of=TODAY)
        assert reasons(store) == {"dup": {"complex-condition"}}

        merged = {
            **patient("dup"),
            "active": False,
            "link": [{"other": {"reference": "Patient/main"}, "type": "replaced-by"}],
        }
        await screen_files(store, SERVER, [write(tmp_path / "second.ndjson", [merged])], as_of=TODAY)
        assert reasons(store) == {}
