"""Push throughput: the adapter (one transaction per case, bounded concurrency) against a naive client
doing the same idempotent work — one conditional create (``If-None-Exist``) per resource, one after
the other — on the real test server (sekmet-fhir, started here on loopback), in the same run.

Run: ``python benchmarks/bench_push.py [--cases N]``. Prints cases/s, resources/s and the ratio
(goal ≥ 3×); it does not assert.

sekmet cannot search Goal or CareTeam by identifier, so for those the naive client, like the adapter,
writes ``PUT Type/<stable id>`` — still one idempotent request per resource.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient, BundleEntry
from fhir_cm.mapping import ResourceKey, case_to_bundle
from fhir_cm.store import open_store
from fhir_cm.sync import push_cases
from fhir_cm.sync._identity import Identity, rewrite_references
from fhir_cm.synthetic import generate_cases
from tests.servers import sekmet_server


async def naive(base: str, cases: list, system: str) -> int:
    """One request per resource, sequential, in reference order, ids written into later references."""
    sent = 0
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        identity = Identity(await client.capabilities(), system)
        for case in cases:
            bundle = case_to_bundle(case, "R4", system)
            assigned: dict[str, str] = {}
            entries = [BundleEntry.from_fhir(e) for e in bundle["entry"]]
            pending = list(entries)
            while pending:  # referenced entries first
                ready = [e for e in pending if not (set(e.references()) & {p.full_url for p in pending if p is not e})]
                entry = (ready or pending)[0]
                pending.remove(entry)
                resource = dict(entry.resource or {})
                rewrite_references(resource, assigned)
                rtype = resource["resourceType"]
                if identity.by_identifier(rtype):
                    result = await client.create(resource, if_none_exist=entry.if_none_exist)
                else:
                    key_value = resource["identifier"][0]["value"]
                    rid = identity.stable_id(ResourceKey(rtype, key_value))
                    result = await client.update({**resource, "id": rid}, versioned=False)
                assigned[entry.full_url or ""] = f"{rtype}/{result.id}"
                sent += 1
    return sent


async def adapter(base: str, cases: list, system: str, db: Path) -> int:
    settings = Settings(database_url=f"sqlite:///{db}", fhir_base=base, identifier_system=system)
    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(base) as client:
            report = await push_cases(store, client, settings, cases)
    if report.failures:
        raise SystemExit(f"adapter push failed: {report.failures[0].reason}")
    return report.created + report.updated + report.unchanged


def _run_client(mode: str, base: str, n_cases: int, workdir: str, queue: mp.Queue[tuple[int, float]]) -> None:
    """One measured run, in a process of its own: the server keeps its own interpreter (and GIL), as a
    real FHIR server would, and the client's CPU work is not mistaken for the server's."""
    cases = list(generate_cases(n_cases, seed=2024))
    system = f"urn:bench:{mode}:{uuid.uuid4().hex}"
    t0 = time.perf_counter()
    if mode == "naive":
        sent = asyncio.run(naive(base, cases, system))
    elif mode == "adapter":
        sent = asyncio.run(adapter(base, cases, system, Path(workdir) / f"{uuid.uuid4().hex}.db"))
    else:  # warm-up of both code paths and of the server
        sent = asyncio.run(naive(base, cases[:2], system))
    queue.put((sent, time.perf_counter() - t0))


def _measure(ctx: Any, mode: str, base: str, n_cases: int, workdir: str) -> tuple[int, float]:
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_client, args=(mode, base, n_cases, workdir, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, sekmet_server(Path(tmp)) as server:
        _measure(ctx, "warmup", server.base_url, 2, tmp)
        n_naive, t_naive = _measure(ctx, "naive", server.base_url, args.cases, tmp)
        n_adapter, t_adapter = _measure(ctx, "adapter", server.base_url, args.cases, tmp)
    n = args.cases
    print(f"push of {n} cases to sekmet-fhir on loopback (server in this process, each client in its own)")
    print(f"  naive   : {n / t_naive:8.1f} cases/s {n_naive / t_naive:9.1f} resources/s ({t_naive:.2f}s)")
    print(f"  adapter : {n / t_adapter:8.1f} cases/s {n_adapter / t_adapter:9.1f} resources/s ({t_adapter:.2f}s)")
    print(f"  ratio   : {t_naive / t_adapter:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
