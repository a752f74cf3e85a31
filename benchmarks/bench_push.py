"""Push throughput: the adapter (one transaction per case, bounded concurrency) against a naive client
doing the same idempotent work — one conditional create (``If-None-Exist``) per resource, one after
the other — on the real test server (sekmet-fhir, started here on loopback), in the same run.

Run: ``python benchmarks/bench_push.py [--cases N] [--repeat R]``. Prints cases/s, resources/s, the
ratio (goal ≥ 3×) and the server's CPU time per case; it does not assert. "The same work" means the
same end state on the server: the naive client also writes the patient, the adapter's Device and one
Provenance per case, as the adapter does.

sekmet cannot search Goal or CareTeam by identifier, so for those the naive client, like the adapter,
writes ``PUT Type/<stable id>`` — still one idempotent request per resource.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient, BundleEntry
from fhir_cm.mapping import ResourceKey, case_to_bundle, if_none_exist
from fhir_cm.store import content_hash, open_store
from fhir_cm.sync import push_cases
from fhir_cm.sync._identity import Identity, rewrite_references
from fhir_cm.sync._provenance import ADAPTER_DEVICE, device_resource, provenance_id, provenance_resource
from fhir_cm.synthetic import generate_cases
from tests.servers import sekmet_server


async def naive(base: str, cases: list, system: str) -> int:
    """The same end state on the server, one request at a time: the adapter's Device once; per case
    the patient, then each resource in reference order (server ids written into later references),
    then one Provenance naming what was written. Counts the case's resources, as the adapter does."""
    sent = 0
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        identity = Identity(await client.capabilities(), system)
        device = await client.create(
            device_resource(system, "R4"), if_none_exist=if_none_exist(system, ADAPTER_DEVICE)
        )
        for case in cases:
            pid = case.patient.id
            patient = {"resourceType": "Patient", "identifier": [{"system": system, "value": pid}]}
            if case.patient.name:
                patient["name"] = [{"text": case.patient.name}]
            found = await client.create(patient, if_none_exist=if_none_exist(system, pid))
            assigned: dict[str, str] = {f"Patient/{pid}": f"Patient/{found.id}"}
            bundle = case_to_bundle(case, "R4", system)
            entries = [BundleEntry.from_fhir(e) for e in bundle["entry"]]
            pending = list(entries)
            written: list[tuple[ResourceKey, str]] = []
            while pending:  # referenced entries first
                ready = [e for e in pending if not (set(e.references()) & {p.full_url for p in pending if p is not e})]
                entry = (ready or pending)[0]
                pending.remove(entry)
                resource = dict(entry.resource or {})
                rewrite_references(resource, assigned)
                rtype = resource["resourceType"]
                key = ResourceKey(rtype, resource["identifier"][0]["value"])
                if identity.by_identifier(rtype):
                    result = await client.create(resource, if_none_exist=entry.if_none_exist)
                else:
                    result = await client.update({**resource, "id": identity.stable_id(key)}, versioned=False)
                assigned[entry.full_url or ""] = f"{rtype}/{result.id}"
                written.append((key, content_hash(resource)))
                sent += 1
            pid_ = provenance_id(case.id, "CREATE", written)
            targets = [assigned[e.full_url or ""] for e in entries]
            provenance = provenance_resource(case, "CREATE", targets, f"Device/{device.id}", resource_id=pid_)
            await client.update(provenance, versioned=False)
    return sent


async def adapter(base: str, cases: list, system: str, db: Path) -> int:
    settings = Settings(database_url=f"sqlite:///{db}", fhir_base=base, identifier_system=system)
    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(base) as client:
            report = await push_cases(store, client, settings, cases)
    if report.failures:
        raise SystemExit(f"adapter push failed: {report.failures[0].reason}")
    return report.created + report.updated + report.unchanged


def _push(mode: str, base: str, cases: list, workdir: str) -> int:
    """Push ``cases`` under an identifier system of their own: nothing on the server matches yet."""
    system = f"urn:bench:{mode}:{uuid.uuid4().hex}"
    if mode == "naive":
        return asyncio.run(naive(base, cases, system))
    return asyncio.run(adapter(base, cases, system, Path(workdir) / f"{uuid.uuid4().hex}.db"))


def _run_client(mode: str, base: str, n_cases: int, workdir: str, queue: mp.Queue[Any]) -> None:
    """One measured run, in a process of its own: the server keeps its own interpreter (and GIL), as a
    real FHIR server would, and the client's CPU work is not mistaken for the server's.

    Each client first pushes two other cases, so that neither is timed loading its code and tables,
    nor the server loading what that client's requests need: what is timed is the work of pushing.
    The queue tells the parent when the clock starts, so it can count the server's CPU time too.
    """
    cases = list(generate_cases(n_cases + 2, seed=2024))
    _push(mode, base, cases[-2:], workdir)
    queue.put("start")
    t0 = time.perf_counter()
    sent = _push(mode, base, cases[:-2], workdir)
    queue.put((sent, time.perf_counter() - t0))


@dataclass
class Run:
    resources: int
    seconds: float
    server_cpu: float  # CPU time of this (the server's) process while the client was timed


def _measure(ctx: Any, mode: str, base: str, n_cases: int, workdir: str) -> Run:
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_client, args=(mode, base, n_cases, workdir, queue))
    proc.start()
    queue.get()
    cpu0 = time.process_time()
    sent, seconds = queue.get()
    server_cpu = time.process_time() - cpu0
    proc.join()
    return Run(sent, seconds, server_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each client, alternating; medians are printed")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    runs: dict[str, list[Run]] = {"naive": [], "adapter": []}
    for _ in range(args.repeat):
        for mode, measured in runs.items():
            # A fresh server each time: what one run left behind does not slow the next one's searches.
            with tempfile.TemporaryDirectory() as tmp, sekmet_server(Path(tmp)) as server:
                measured.append(_measure(ctx, mode, server.base_url, args.cases, tmp))
    n = args.cases
    print(f"push of {n} cases to sekmet-fhir on loopback (server in this process, each client in its own);")
    print(f"median of {args.repeat} alternating runs, each on a fresh, empty server")
    med: dict[str, Run] = {}
    for mode, measured in runs.items():
        m = med[mode] = Run(
            measured[0].resources,
            statistics.median(r.seconds for r in measured),
            statistics.median(r.server_cpu for r in measured),
        )
        each = ", ".join(f"{r.seconds:.2f}" for r in measured)
        print(
            f"  {mode:8s}: {n / m.seconds:6.1f} cases/s {m.resources / m.seconds:7.1f} resources/s "
            f"({m.seconds:.2f}s; runs {each}); server CPU {1000 * m.server_cpu / n:.1f} ms/case"
        )
    ratio = med["naive"].seconds / med["adapter"].seconds
    print(f"  ratio   : {ratio:.1f}x (goal >= 3x)")
    print(
        f"  the server spends {1000 * med['adapter'].server_cpu / n:.1f} ms of CPU per case on the adapter's "
        f"transactions: at most {med['naive'].seconds / med['adapter'].server_cpu:.1f}x while that server "
        "work stays (a single-threaded server)"
    )


if __name__ == "__main__":
    main()
