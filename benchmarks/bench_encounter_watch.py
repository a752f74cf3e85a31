"""The Encounter watch: searches issued and Encounters read per second for N open cases, batched
(``patient=a,b,c``) against one search per patient, and the watch's peak memory as N grows.

    python benchmarks/bench_encounter_watch.py [--cases 200,1000] [--per-patient 10] [--changed 0.1]

On the real test server (sekmet-fhir on loopback, in this process): N open cases whose patients each
have ``--per-patient`` Encounters written by "the hospital" (no identifier of ours), all watched and
read already (all of them written within the watch's 60 s overlap: the worst case, every one read
again and checked against the ledger); then a
fraction ``--changed`` of the patients get a new Encounter, and one round of the watch
(``changed_encounter_patients``) finds them — once with batched searches, once with one search per
patient, each on a fresh copy of the store. Printed: searches, Encounters read, wall time,
Encounters/s, and the peak of Python memory allocated during the round (tracemalloc) — the goal is
that it does not grow with N beyond the set of patient ids. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_cm.domain import Case, Party, Period  # noqa: E402
from fhir_cm.fhir import AsyncFhirClient  # noqa: E402
from fhir_cm.store import LedgerEntry, mark_watched, open_store, put_ledger, save_case  # noqa: E402
from fhir_cm.sync import changed_encounter_patients, settle_watch  # noqa: E402
from tests.servers import sekmet_server  # noqa: E402


def _encounter(patient: str, day: int) -> dict[str, Any]:
    start = dt.date(2024, 1, 1) + dt.timedelta(days=day)
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": start.isoformat(), "end": start.isoformat()},
    }


async def _run(
    base: str, n: int, per_patient: int, changed: float, workdir: Path
) -> list[tuple[str, dict[str, float]]]:
    tag = f"{n}-{time.monotonic_ns()}"
    patients = [f"w{tag}-{i}" for i in range(n)]
    template = workdir / f"watch-{n}.db"
    with open_store(f"sqlite:///{template}") as store, store.session() as s:
        for i, p in enumerate(patients):
            save_case(
                s,
                Case(
                    id=f"c{tag}-{i}",
                    programme="health-care",
                    period=Period(start=dt.date(2024, 1, 1)),
                    patient=Party(kind="patient", id=p),
                ),
                enqueue=False,
            )
        mark_watched(s, base, [f"c{tag}-{i}" for i in range(n)])
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        for p in patients:
            await client.update({"resourceType": "Patient", "id": p, "active": True}, versioned=False)
        made = [_encounter(p, (i + k * 7) % 300) for i, p in enumerate(patients) for k in range(per_patient)]
        for start in range(0, len(made), 500):
            await client.batch(
                [{"resource": r, "request": {"method": "POST", "url": "Encounter"}} for r in made[start : start + 500]]
            )
        # One round settles the watermark, and the tracker's ledger holds every Encounter (as after a
        # round that tracked them); then the hospital writes more.
        with open_store(f"sqlite:///{template}") as store:
            settle_watch(store, base, await changed_encounter_patients(store, client), failed=[])
            with store.session() as s:
                for group in range(0, n, 50):
                    reference = ",".join(f"Patient/{p}" for p in patients[group : group + 50])
                    async for page in client.search("Encounter").where("patient", reference).count(200).pages():
                        put_ledger(
                            s,
                            [
                                LedgerEntry(
                                    server_base=base,
                                    resource_type="Encounter",
                                    key=str(r["id"]),
                                    server_id=str(r["id"]),
                                    version_id=r["meta"]["versionId"],
                                )
                                for r in page.matches
                            ],
                        )
        for p in patients[: max(1, int(n * changed))]:
            await client.create(_encounter(p, 301))
        out = []
        for label, batched in (("batched", True), ("per patient", False)):
            copy = workdir / f"watch-{n}-{label.replace(' ', '-')}.db"
            shutil.copy(template, copy)
            with open_store(f"sqlite:///{copy}") as store:
                tracemalloc.start()
                started = time.perf_counter()
                report = await changed_encounter_patients(store, client, batched=batched)
                wall = time.perf_counter() - started
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            out.append(
                (
                    label,
                    {
                        "searches": report.searches,
                        "encounters": report.encounters,
                        "touched": len(report.touched),
                        "wall": wall,
                        "per_s": report.encounters / wall if wall else 0.0,
                        "peak_kib": peak / 1024,
                    },
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="200,1000", help="comma-separated numbers of open cases")
    parser.add_argument("--per-patient", type=int, default=10, help="Encounters each patient has before the round")
    parser.add_argument("--changed", type=float, default=0.1, help="fraction of patients with a new Encounter")
    args = parser.parse_args()
    sizes = [int(x) for x in args.cases.split(",")]
    with tempfile.TemporaryDirectory() as tmp, sekmet_server(Path(tmp)) as server:
        print(
            f"Encounter watch on sekmet-fhir (loopback): {args.per_patient} Encounters per patient read before, "
            f"then {args.changed:.0%} of patients with a new one"
        )
        print(
            f"  {'open cases':>10} {'mode':<12} {'searches':>8} {'read':>6} {'touched':>7} {'wall s':>7} "
            f"{'enc/s':>8} {'peak KiB':>9}"
        )
        for n in sizes:
            for label, r in asyncio.run(_run(server.base_url, n, args.per_patient, args.changed, Path(tmp))):
                print(
                    f"  {n:>10} {label:<12} {r['searches']:>8.0f} {r['encounters']:>6.0f} {r['touched']:>7.0f} "
                    f"{r['wall']:>7.2f} {r['per_s']:>8.0f} {r['peak_kib']:>9.0f}"
                )


if __name__ == "__main__":
    main()
