"""The push benchmark's naive client does the work it is compared with: on a real server (HAPI
refuses a reference to a resource it does not hold), one case's resources land, referring to one
another and to the patient by the ids the server gave."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.synthetic import generate_cases

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_push.py"


def bench_push() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_push", _BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_push", module)
    spec.loader.exec_module(module)
    return module


async def test_the_naive_client_writes_a_case_whose_references_resolve(
    fhir_server: str, raw: AsyncFhirClient, system: str
) -> None:
    [case] = generate_cases(1, seed=4711)
    sent = await bench_push().naive(fhir_server, [case], system)

    [patient] = await raw.search("Patient").where("identifier", f"{system}|{case.patient.id}").fetch_all()
    [episode] = await raw.search("EpisodeOfCare").where("identifier", f"{system}|{case.id}").fetch_all()
    assert episode["patient"]["reference"] == f"Patient/{patient['id']}"
    plans = await raw.search("CarePlan").where("identifier", f"{system}|{case.id}-careplan").fetch_all()
    assert [p["subject"]["reference"] for p in plans] == [f"Patient/{patient['id']}"]
    assert sent == len(case.needs) + len(case.goals) + 2 * len(case.referrals) + len(case.contacts) + len(
        case.stays
    ) + 2 + bool(case.team)
