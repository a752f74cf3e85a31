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
import sys
import tempfile
import time
import uuid
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    args = parser.parse_args()
    cases = list(generate_cases(args.cases, seed=2024))
    with tempfile.TemporaryDirectory() as tmp, sekmet_server(Path(tmp)) as server:
        asyncio.run(naive(server.base_url, cases[:2], f"urn:bench:warmup:{uuid.uuid4().hex}"))  # warm up both paths
        t0 = time.perf_counter()
        n_naive = asyncio.run(naive(server.base_url, cases, f"urn:bench:naive:{uuid.uuid4().hex}"))
        t_naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_adapter = asyncio.run(adapter(server.base_url, cases, f"urn:bench:adapter:{uuid.uuid4().hex}", Path(tmp) / "b.db"))
        t_adapter = time.perf_counter() - t0
    print(f"push of {len(cases)} cases to sekmet-fhir on loopback")
    print(f"  naive   : {len(cases) / t_naive:8.1f} cases/s {n_naive / t_naive:9.1f} resources/s ({t_naive:.2f}s)")
    print(f"  adapter : {len(cases) / t_adapter:8.1f} cases/s {n_adapter / t_adapter:9.1f} resources/s ({t_adapter:.2f}s)")
    print(f"  ratio   : {t_naive / t_adapter:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
