"""Push throughput: the adapter (one transaction per case, bounded concurrency) against a naive client
doing the same idempotent work — one conditional create (``If-None-Exist``) per resource, one after
the other — on real servers started here on loopback, in the same run:

* **sekmet-fhir** (the test server, single-threaded, in this process): a fresh, empty server for
  every run;
* **an in-memory server on one thread** (``tests/memory_server.py``: validates every resource with its
  fhir.resources model, keeps them in dictionaries, looks identifiers up in an index; in a process of
  its own): a fresh, empty server for every run;
* **HAPI FHIR JPA R4** (``tests/hapi_server.py``, in a JVM of its own), twice: storing in a fresh
  database of the local PostgreSQL, as HAPI runs in production (its CPU is the JVM's and the
  database server's), then on H2 in memory, as most tests run it (``--hapi-db`` picks one). The
  two differ where it matters here: HAPI resolves a transaction's references to client-assigned ids
  (the parties) with a database query that PostgreSQL answers from an index and H2 by scanning the
  resource table; and every request the naive client makes commits on its own, which a durable
  database pays for. A start costs 15–45 s, so one HAPI serves every HAPI run: each push writes under
  an identifier system of its own, and each round pushes cases of a seed of its own (other patients,
  other parties), so no run finds what another wrote. The JVM is warmed up first (its JIT compiles
  the hot paths as they run) by untimed pushes of other cases with each client.

Run: ``python benchmarks/bench_push.py [--server sekmet|memory|hapi|all] [--cases N] [--memory-cases N]
[--repeat R] [--hapi-cases N] [--hapi-repeat R] [--hapi-warmup W] [--hapi-db both|postgres|h2]``. The in-memory server gets 400
cases by default, as the issue measured it: a push has a fixed cost of its own (the server's
CapabilityStatement and the adapter's Device, the first batch's lookups, the last group's settling),
during which the server waits, a larger share of a short push. Per target it prints the medians of each
client's wall time, the ratio naive/adapter (goal ≥ 3×), the server's CPU time during each push and
the ratio of the push's wall time to that server CPU time — 1.0 for a push that keeps a
single-threaded server busy all the time; the closer to 1.0 the less the server waits for the
client. For HAPI, whose JVM works on both cores,
it also prints the least time the push could take for the CPU both sides spent on it (all of it
spread over the machine's cores), the ratio that allows, and how much of the machine the push kept
busy. It does not assert. Server CPU is this process's CPU time for sekmet (nothing else runs in
it while a client is timed), and ``utime + stime`` from ``/proc/<pid>/stat`` of the in-memory
server's process and of HAPI's JVM (every thread: request handling, H2, GC, JIT), plus, for HAPI on
PostgreSQL, of the database server's processes (``postgres_cpu``).

"The same work" means the same end state on the server: the naive client also writes the patient,
the parties the case names (HAPI refuses a reference to one it does not hold, HAPI-1094), the
adapter's Device and one Provenance per case, as the adapter does. Parties go as the adapter writes
them (``sync._parties``), once per run: read under the id the case names them by, made minimal under
that id if missing (conditionally for a numeric id). Until 2026-12-04 the naive client created them
conditionally under ids of the server's, which cost HAPI more per party than the adapter's read and
``PUT`` (its CPU per case for the naive client fell from 349 to 218 ms with the change): the ratios
on HAPI measured before then were that much kinder to the adapter.

sekmet cannot search Goal or CareTeam by identifier, so for those the naive client, like the adapter,
writes ``PUT Type/<stable id>`` — still one idempotent request per resource. The in-memory server and
HAPI take a conditional create for every type.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_cm.config import Settings
from fhir_cm.domain import Party
from fhir_cm.fhir import AsyncFhirClient, BundleEntry, ResourceNotFound
from fhir_cm.mapping import ResourceKey, case_to_bundle, if_none_exist
from fhir_cm.process import tune_collector
from fhir_cm.store import content_hash, open_store
from fhir_cm.sync import push_cases
from fhir_cm.sync._identity import Identity, rewrite_references
from fhir_cm.sync._parties import case_parties, minimal_party
from fhir_cm.sync._provenance import ADAPTER_DEVICE, device_resource, provenance_id, provenance_resource
from fhir_cm.synthetic import generate_cases
from benchmarks.processes import machine_cpu, postgres_cpu, process_cpu
from tests.servers import sekmet_server

#: The measured cases of a sekmet run (the same in every run: each gets a fresh server).
SEKMET_SEED = 2024
#: HAPI: round ``r`` pushes seed ``HAPI_SEED + r``, warm-up push ``w`` seed ``WARMUP_SEED + w``.
HAPI_SEED = 3000
WARMUP_SEED = 9000
CLIENTS = ("naive", "adapter")


async def naive_party(client: AsyncFhirClient, party: Party, key: tuple[str, str], system: str, patient: str) -> str:
    """A party as the adapter writes it (``sync._parties``): the one the server holds under the id the
    case names it by, else made minimal under that id — or, for a numeric id (HAPI refuses those from a
    client), conditionally. Returns the reference the case's resources then carry."""
    rtype, rid = key
    minimal = minimal_party(party, rtype, system, patient)
    if rid.isdigit():
        made = await client.create(minimal, if_none_exist=if_none_exist(system, rid))
        return f"{rtype}/{made.id}"
    try:
        await client.read(rtype, rid)
    except ResourceNotFound:
        await client.update({**minimal, "id": rid}, versioned=False)
    return f"{rtype}/{rid}"


async def naive(base: str, cases: list, system: str) -> int:
    """The same end state on the server, one request at a time: the adapter's Device once; per case
    the patient, each party the case names that this run has not written yet, then each resource in
    reference order (server ids written into later references), then one Provenance naming what was
    written. Counts the case's resources, as the adapter does."""
    sent = 0
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        identity = Identity(await client.capabilities(), system)
        device = await client.create(device_resource(system, "R4"), if_none_exist=if_none_exist(system, ADAPTER_DEVICE))
        parties: dict[str, str] = {}  # "Practitioner/<party id>" → "Practitioner/<server id>", for the run
        for case in cases:
            pid = case.patient.id
            patient = {"resourceType": "Patient", "identifier": [{"system": system, "value": pid}]}
            if case.patient.name:
                patient["name"] = [{"text": case.patient.name}]
            found = await client.create(patient, if_none_exist=if_none_exist(system, pid))
            assigned: dict[str, str] = {f"Patient/{pid}": f"Patient/{found.id}"}
            for (rtype, rid), party in case_parties(case).items():
                ref = f"{rtype}/{rid}"
                if ref not in parties:
                    parties[ref] = await naive_party(client, party, (rtype, rid), system, assigned[f"Patient/{pid}"])
                assigned[ref] = parties[ref]
            bundle = case_to_bundle(case, "R4", system)
            entries = [BundleEntry.from_fhir(e) for e in bundle["entry"]]
            pending = list(entries)
            written: list[tuple[ResourceKey, str]] = []
            while pending:  # referenced entries first
                ready = [e for e in pending if not (set(e.references()) & {p.full_url for p in pending if p is not e})]
                entry = (ready or pending)[0]
                pending.remove(entry)
                resource = dict(entry.resource or {})
                resource = rewrite_references(resource, assigned)
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
            # onBehalfOf: the case manager, as the server calls it
            provenance = rewrite_references(provenance, assigned)
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


def _push(mode: str, base: str, cases: list, workdir: str, db: Path | None = None) -> int:
    """Push ``cases`` under an identifier system of their own: nothing on the server matches yet.
    The adapter works on the store ``db`` (a new one if not given)."""
    system = f"urn:bench:{mode}:{uuid.uuid4().hex}"
    if mode == "naive":
        return asyncio.run(naive(base, cases, system))
    return asyncio.run(adapter(base, cases, system, db or new_store(workdir)))


def new_store(workdir: str) -> Path:
    """A new, empty store file, created (schema migrated) now: a push works on a store that exists."""
    db = Path(workdir) / f"{uuid.uuid4().hex}.db"
    with open_store(f"sqlite:///{db}"):
        pass
    return db


def _run_client(mode: str, base: str, n_cases: int, seed: int, workdir: str, queue: mp.Queue[Any]) -> None:
    """One measured run, in a process of its own: the server keeps its own interpreter (and GIL), as a
    real FHIR server would, and the client's CPU work is not mistaken for the server's.

    Each client first pushes two other cases, so that neither is timed loading its code and tables,
    nor the server loading what that client's requests need: what is timed is the work of pushing.
    The adapter's store is created before the clock starts (empty: saving the cases is timed), as a
    user's store exists before a push. The queue tells the parent when the clock starts, so it can
    count the server's CPU time too. Both clients run with the collector settings of the ``fhir-cm``
    command (``fhir_cm.process``).
    """
    tune_collector()
    cases = list(generate_cases(n_cases + 2, seed=seed))
    _push(mode, base, cases[-2:], workdir)
    db = new_store(workdir) if mode == "adapter" else None
    queue.put("start")
    t0, cpu0 = time.perf_counter(), time.process_time()
    sent = _push(mode, base, cases[:-2], workdir, db)
    queue.put((sent, time.perf_counter() - t0, time.process_time() - cpu0))


@dataclass
class Run:
    resources: int
    seconds: float
    server_cpu: float  # CPU time of the server while the client was timed
    client_cpu: float  # CPU time of the client's process while it was timed
    other_cpu: float  # CPU time of every other process on the machine meanwhile (others' benchmarks, tests…)

    @property
    def wall_per_cpu(self) -> float:
        return self.seconds / self.server_cpu


def _measure(ctx: Any, mode: str, base: str, n_cases: int, seed: int, workdir: str, cpu: Callable[[], float]) -> Run:
    queue = ctx.Queue()
    proc = ctx.Process(target=_run_client, args=(mode, base, n_cases, seed, workdir, queue))
    proc.start()
    queue.get()
    cpu0, busy0 = cpu(), sum(machine_cpu())
    sent, seconds, client_cpu = queue.get()
    server_cpu, busy = cpu() - cpu0, sum(machine_cpu()) - busy0
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"the {mode} client failed (exit {proc.exitcode})")
    return Run(sent, seconds, server_cpu, client_cpu, max(0.0, busy - server_cpu - client_cpu))


# -- targets ------------------------------------------------------------------------------------------


def bench_sekmet(ctx: Any, n_cases: int, repeat: int) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {mode: [] for mode in CLIENTS}
    for _ in range(repeat):
        for mode, measured in runs.items():
            # A fresh server each time: what one run left behind does not slow the next one's searches.
            with tempfile.TemporaryDirectory() as tmp, sekmet_server(Path(tmp)) as server:
                measured.append(_measure(ctx, mode, server.base_url, n_cases, SEKMET_SEED, tmp, time.process_time))
    return runs


def bench_memory(ctx: Any, n_cases: int, repeat: int) -> dict[str, list[Run]]:
    from tests.memory_server import memory_server

    runs: dict[str, list[Run]] = {mode: [] for mode in CLIENTS}
    for _ in range(repeat):
        for mode, measured in runs.items():
            with tempfile.TemporaryDirectory() as tmp, memory_server() as server:
                cpu = functools.partial(process_cpu, int(server.settings["pid"]))
                measured.append(_measure(ctx, mode, server.base_url, n_cases, SEKMET_SEED, tmp, cpu))
    return runs


@contextlib.contextmanager
def _hapi(base: str | None, pid: int | None, database: str) -> Iterator[tuple[str, int, float]]:
    """``(base URL, JVM pid, seconds to start)``: the HAPI given, or one started for the block (on
    ``database``: ``h2`` in memory, or ``postgres``, a fresh database of the local server)."""
    if base is not None:
        if pid is None:
            raise SystemExit("--hapi-base needs --hapi-pid (the JVM whose CPU time is counted)")
        yield base, pid, 0.0
        return
    from tests.hapi_server import hapi_server
    from tests.pg import temporary_database

    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(temporary_database("fhir_cm_bench_hapi")) if database == "postgres" else None
        server = stack.enter_context(hapi_server("R4", database=url))
        yield server.base_url, int(server.settings["pid"]), time.perf_counter() - t0


def bench_hapi(
    ctx: Any, n_cases: int, repeat: int, warmup: int, base: str | None, pid: int | None, database: str = "h2"
) -> tuple[dict[str, list[Run]], dict[str, list[Run]], float]:
    """``(measured runs, warm-up runs, start-up seconds)`` against one HAPI R4 (its CPU: its JVM's,
    and on PostgreSQL the database server's as well)."""
    runs: dict[str, list[Run]] = {mode: [] for mode in CLIENTS}
    warm: dict[str, list[Run]] = {mode: [] for mode in CLIENTS}
    with tempfile.TemporaryDirectory() as tmp, _hapi(base, pid, database) as (url, jvm, started):
        if database == "postgres":
            cpu = lambda: process_cpu(jvm) + postgres_cpu()  # noqa: E731
        else:
            cpu = lambda: process_cpu(jvm)  # noqa: E731
        for w in range(warmup):
            for mode in CLIENTS:
                warm[mode].append(_measure(ctx, mode, url, n_cases, WARMUP_SEED + w, tmp, cpu))
        for r in range(repeat):
            # Alternating, and the naive client first in even rounds only: data accumulates in HAPI's
            # database as the runs go, and neither client should always be the one that meets more of it.
            order = CLIENTS if r % 2 == 0 else CLIENTS[::-1]
            for mode in order:
                runs[mode].append(_measure(ctx, mode, url, n_cases, HAPI_SEED + r, tmp, cpu))
    return runs, warm, started


# -- report -------------------------------------------------------------------------------------------


def _median(measured: list[Run]) -> Run:
    return Run(
        measured[0].resources,
        statistics.median(r.seconds for r in measured),
        statistics.median(r.server_cpu for r in measured),
        statistics.median(r.client_cpu for r in measured),
        statistics.median(r.other_cpu for r in measured),
    )


def report(runs: dict[str, list[Run]], n: int) -> dict[str, Run]:
    med: dict[str, Run] = {}
    for mode, measured in runs.items():
        m = med[mode] = _median(measured)
        each = ", ".join(f"{r.seconds:.2f}" for r in measured)
        ratios = ", ".join(f"{r.wall_per_cpu:.2f}" for r in measured)
        print(
            f"  {mode:8s}: {m.seconds:6.2f}s  {n / m.seconds:6.1f} cases/s {m.resources / m.seconds:7.1f} resources/s "
            f"(runs {each})"
        )
        wall_per_cpu = statistics.median(r.wall_per_cpu for r in measured)
        print(
            f"            server CPU {m.server_cpu:.2f}s ({1000 * m.server_cpu / n:.1f} ms/case), client CPU "
            f"{m.client_cpu:.2f}s, other processes {m.other_cpu:.2f}s; wall/server CPU {wall_per_cpu:.2f} (runs {ratios})"
        )
    print(f"  ratio   : {med['naive'].seconds / med['adapter'].seconds:.1f}x naive/adapter wall time (goal >= 3x)")
    return med


def machine_bound(med: dict[str, Run]) -> str:
    """The fastest the adapter's push could go on this machine for the CPU it and a server that works
    on several threads (HAPI's JVM) spend on it: both sides' CPU time spread over every core."""
    adapter, cores = med["adapter"], os.cpu_count() or 1
    floor = (adapter.server_cpu + adapter.client_cpu + adapter.other_cpu) / cores
    return (
        f"  the server, the adapter's client and the machine's other processes spend {floor * cores:.2f}s of CPU on "
        f"the push: on {cores} cores it cannot take less than {floor:.2f}s, {med['naive'].seconds / floor:.1f}x the naive "
        f"client at most while that work stays; it takes {adapter.seconds:.2f}s, {floor / adapter.seconds:.0%} of "
        "the machine busy"
    )


STORAGE = {
    "h2": "H2 in memory",
    "postgres": "on the local PostgreSQL; its CPU counts as the server's",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", choices=("sekmet", "memory", "hapi", "all"), default="all", help="target(s); default all"
    )
    parser.add_argument("--cases", type=int, default=100, help="cases per sekmet run")
    parser.add_argument(
        "--memory-cases", type=int, default=400, help="cases per in-memory run (the issue's measure: 400)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="sekmet runs of each client, alternating; medians are printed"
    )
    parser.add_argument("--hapi-cases", type=int, default=40, help="cases per HAPI run")
    parser.add_argument("--hapi-repeat", type=int, default=3, help="HAPI runs of each client, alternating")
    parser.add_argument(
        "--hapi-warmup", type=int, default=2, help="untimed HAPI pushes of other cases per client, first"
    )
    parser.add_argument(
        "--hapi-db",
        choices=("both", "postgres", "h2"),
        default="both",
        help="HAPI's database: postgres (a fresh database of the local server, as HAPI runs in production), "
        "h2 in memory (as most tests run it), or both, one after the other (default)",
    )
    parser.add_argument("--hapi-base", help="use this running HAPI R4 instead of starting one (needs --hapi-pid)")
    parser.add_argument("--hapi-pid", type=int, help="the pid of that HAPI's JVM")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(
        "wall/server CPU = the push's wall time / the server's CPU time during it: 1.0 when a single-threaded "
        "server never waits for the client (lower only for a server working on several cores at once)"
    )
    if args.server in ("sekmet", "all"):
        n = args.cases
        runs = bench_sekmet(ctx, n, args.repeat)
        print(f"sekmet-fhir: push of {n} cases on loopback (server in this process, each client in its own);")
        print(f"median of {args.repeat} alternating runs, each on a fresh, empty server")
        med = report(runs, n)
        print(
            f"  the server spends {1000 * med['adapter'].server_cpu / n:.1f} ms of CPU per case on the adapter's "
            f"transactions: at most {med['naive'].seconds / med['adapter'].server_cpu:.1f}x while that server "
            "work stays (a single-threaded server)"
        )
    if args.server in ("memory", "all"):
        n = args.memory_cases
        runs = bench_memory(ctx, n, args.repeat)
        print(
            f"in-memory server on one thread: push of {n} cases on loopback (server and each client in a process of its own);"
        )
        print(f"median of {args.repeat} alternating runs, each on a fresh, empty server")
        med = report(runs, n)
        print(
            f"  the server spends {1000 * med['adapter'].server_cpu / n:.1f} ms of CPU per case on the adapter's "
            f"requests: at most {med['naive'].seconds / med['adapter'].server_cpu:.1f}x while that server work stays"
        )
        busy = statistics.median(r.server_cpu / r.seconds for r in runs["adapter"])
        print(f"  server busy: {100 * busy:.0f}% of the adapter's wall time (goal >= 80%; the limit is 100%)")
    if args.server in ("hapi", "all"):
        databases = ("postgres", "h2") if args.hapi_db == "both" else (args.hapi_db,)
        if args.hapi_base is not None and len(databases) > 1:
            raise SystemExit("--hapi-base runs one HAPI: say which database it stores in (--hapi-db h2|postgres)")
        for database in databases:
            if not bench_hapi_report(ctx, args, database):
                return


def bench_hapi_report(ctx: Any, args: argparse.Namespace, database: str) -> bool:
    """Run and print the HAPI benchmark on ``database``; False if HAPI cannot run here (said why)."""
    n = args.hapi_cases
    try:
        runs, warm, started = bench_hapi(
            ctx, n, args.hapi_repeat, args.hapi_warmup, args.hapi_base, args.hapi_pid, database
        )
    except pytest.skip.Exception as exc:  # no Java 17+ or Maven here, or no PostgreSQL
        print(f"HAPI FHIR JPA R4 ({STORAGE[database]}): not run: {exc.msg}")
        return False
    cores = os.cpu_count()
    how = f"started in {started:.0f}s" if started else "already running"
    print(
        f"HAPI FHIR JPA R4 ({STORAGE[database]}, JVM options of tests/hapi_server.py; {how}): push of {n} cases on "
        f"loopback, {cores} cores shared by server and client;"
    )
    print(
        f"one server for all runs: {args.hapi_warmup} untimed warm-up pushes of {n} other cases per client first, "
        f"then median of {args.hapi_repeat} alternating runs, each push under an identifier system of its own, "
        "each round with cases (patients, parties) of a seed of its own"
    )
    warmups = "; ".join(f"{mode} " + ", ".join(f"{r.seconds:.2f}s" for r in warm[mode]) for mode in CLIENTS)
    print(f"  warm-up : {warmups} (not counted)")
    print(machine_bound(report(runs, n)))
    return True


if __name__ == "__main__":
    main()
