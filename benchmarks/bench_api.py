"""API latency under a fixed request rate (open loop), per route, on the embedded and the PostgreSQL store.

    python benchmarks/bench_api.py [--rate 200] [--seconds 20] [--sqlite-cases 1000] [--pg-cases 10000]
                                   [--store sqlite|postgres|all] [--workers N (default 2)] [--warmup 3]
                                   [--restarted] [--writes 0]

Starts ``fhir-cm serve`` in a process of its own on a store seeded with synthetic cases, waits until
``/readyz`` says so and its processes are idle (every worker has warmed its caches), then sends
requests from this process at a fixed rate — request *i* is due at ``start + i / rate`` whatever
happened to the ones before (open loop), and its latency is counted from when it was due, so a
server that falls behind shows as latency, not as a lower rate (no coordinated omission). The
requests go round-robin over the routes a case-management team and its services use (one untimed
request per route first — the first round's times printed as a ready worker's first answers, what the
first caller of a day waits for a view computed over every case —, then ``--warmup`` seconds at the
rate, not counted; this process freezes its
own heap while it sends, so that its garbage collector does not pause the sender and count as the
server's latency):

* ``GET /api/v1/cases/{id}`` (case read), ``GET /api/v1/cases?programme&status&limit`` (case list with
  filters), ``GET /api/v1/caseload``, ``GET /api/v1/outcomes?programme&from&to``, ``GET /api/v1/audit``,
  ``GET /api/v1/worklist?overdue=true`` (every case manager's overdue items) (supervisor key);
* ``GET /api/v1/worklist`` (the case manager with the most open cases, their key);
* ``GET /fhir/EpisodeOfCare/{id}`` (FHIR read), ``GET /fhir/CarePlan?patient=…`` (FHIR search)
  (service key).

``--writes W`` sends, beside those reads, W case updates per second (``PATCH /api/v1/cases/{id}``, a
supervisor saving a plan summary, a different case each time), open loop as well: every worker then
finds the store changed between reads and catches up (the read routes' views, the façade's index), as a
team's server does while case managers work. Their latencies are printed as a route of their own; and,
before the load, what a change costs the server sent one at a time: the write, and a worker's catch-up
with it, after each route alone and over one request of every route (``_per_change``), so the cores the
changes need at that rate beside the reads'.

It prints p50 / p95 / p99 per route and store against the goal (p99 < 50 ms at 200 requests/s over
10,000 cases on PostgreSQL and 1,000 on SQLite) and the rate actually sent; what one request of each
route costs the server and PostgreSQL in CPU, sent one at a time before the load (so the cores the
rate needs, against the machine's: the limit no queueing gets past, measured in the same run); then each server process's
CPU, the machine's and its host's (steal), and how late this process began requests past their due
time — the sender's own share of the latencies, which on a loaded machine waits for a core too. It does not assert:
figures depend on the machine. The PostgreSQL run needs the server the tests use (127.0.0.1:5432,
``tests/pg.py``), gets a database of its own (vacuumed, analysed and checkpointed after seeding, as
after any bulk load). Both stores are served with ``--workers 2`` by default, as a team expecting this
load would run it: one Python process holds one core's worth of the GIL, and at 200 requests/s one
process is at that limit (``--workers 1`` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.processes import machine_cpu, postgres_cpu, process_cpu, process_tree_cpu  # noqa: E402
from benchmarks.stores import each_store, free_port, seed_store, settle_after_bulk_load  # noqa: E402

STARTUP_SECONDS = 180
GOAL_P99_MS = 50.0


def _routes(seeded: dict[str, Any]) -> list[tuple[str, Any]]:
    sup = {"Authorization": f"Bearer {seeded['supervisor']}"}
    cm = {"Authorization": f"Bearer {seeded['manager']}"}
    svc = {"Authorization": f"Bearer {seeded['service']}", "Accept": "application/fhir+json"}
    cases, patients = seeded["cases"], seeded["patients"]
    return [
        ("case read", lambda i: ("GET", f"/api/v1/cases/{cases[i % len(cases)]}", None, sup)),
        (
            "case list (filters)",
            lambda i: ("GET", "/api/v1/cases", {"programme": "health-care", "status": "active", "limit": 20}, sup),
        ),
        ("caseload", lambda i: ("GET", "/api/v1/caseload", None, sup)),
        (
            "outcomes (programme, period)",
            lambda i: (
                "GET",
                "/api/v1/outcomes",
                {"programme": "health-care", "from": "2024-01-01", "to": "2025-12-31"},
                sup,
            ),
        ),
        ("audit search", lambda i: ("GET", "/api/v1/audit", {"limit": 50}, sup)),
        ("worklist (case manager)", lambda i: ("GET", "/api/v1/worklist", None, cm)),
        ("worklist (all, overdue)", lambda i: ("GET", "/api/v1/worklist", {"overdue": "true"}, sup)),
        ("FHIR read", lambda i: ("GET", f"/fhir/EpisodeOfCare/{cases[i % len(cases)]}", None, svc)),
        ("FHIR search", lambda i: ("GET", "/fhir/CarePlan", {"patient": patients[i % len(patients)]}, svc)),
    ]


def _writes(seeded: dict[str, Any]) -> list[tuple[str, Any]]:
    """``--writes``: a supervisor saving a case's plan summary, a different case each time (from the end of
    the list, so mostly not those the reads ask for)."""
    sup = {"Authorization": f"Bearer {seeded['supervisor']}"}
    cases = seeded["cases"]
    sent = itertools.count()  # a summary never sent before: saving the same one again changes nothing

    def patch(i: int) -> tuple[str, str, None, dict[str, str], dict[str, Any]]:
        summary = f"Reviewed ({next(sent)})."
        return "PATCH", f"/api/v1/cases/{cases[-1 - i % len(cases)]}", None, sup, {"plan_summary": summary}

    return [("case update (PATCH)", patch)]


async def _open_loop(
    base: str,
    routes: list[tuple[str, Any]],
    rate: float,
    seconds: float,
    warm_rounds: int = 1,
    warm_seconds: float = 0.0,
    writes: tuple[list[tuple[str, Any]], float] | None = None,
) -> dict[str, Any]:
    total = int(rate * seconds)
    latencies: dict[str, list[float]] = {name: [] for name, _ in routes + (writes[0] if writes else [])}
    errors: dict[str, int] = dict.fromkeys(latencies, 0)
    # How late this process began each request: counted in its latency (open loop), but the sender's own
    # delay, not the server's — on a loaded machine the sender waits for a core too.
    late: list[float] = []
    # aiohttp, not httpx, sends here: httpx's connection pool does work per request that grows with the
    # number of open connections, so after any hiccup of the server the sender itself fell behind and
    # stayed behind — its own slowness counted as the server's latency.
    connector = aiohttp.TCPConnector(limit=1000, limit_per_host=1000, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base_url=base, connector=connector, timeout=timeout) as client:

        async def send(asked: list[tuple[str, Any]], i: int) -> bool:
            method, path, params, headers, *body = asked[i % len(asked)][1](i // len(asked))
            json = body[0] if body else None
            async with client.request(method, path, params=params, headers=headers, json=json) as response:
                await response.read()
                return response.status >= 400

        # Untimed first: every route asked on fresh connections, several rounds, so that each worker
        # process (the kernel hands each connection to one) has done what it does on first use.
        # The first round's times are a new worker's first answers (one connection: one worker): what
        # the first caller of a day, or after a restart, waits for the views computed over every case.
        first: dict[str, float] = {}
        for round_ in range(warm_rounds):
            async with aiohttp.ClientSession(base_url=base, timeout=timeout) as fresh:
                for i in range(len(routes)):
                    method, path, params, headers = routes[i][1](0)
                    asked = time.perf_counter()
                    async with fresh.request(method, path, params=params, headers=headers) as response:
                        await response.read()
                    if round_ == 0:
                        first[routes[i][0]] = time.perf_counter() - asked

        async def one(asked: list[tuple[str, Any]], i: int, due: float, counted: bool) -> None:
            name = asked[i % len(asked)][0]
            if counted:
                late.append(time.perf_counter() - due)
            try:
                failed = await send(asked, i)
            except (aiohttp.ClientError, TimeoutError):
                failed = True
            if counted:
                latencies[name].append(time.perf_counter() - due)
                errors[name] += failed

        async def each_at(asked: list[tuple[str, Any]], every: float, count: int, counted: bool) -> float:
            start = time.perf_counter()
            tasks = []
            for i in range(count):
                due = start + i / every
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(asked, i, due, counted)))
            sent_in = time.perf_counter() - start
            await asyncio.gather(*tasks)
            return sent_in

        async def at_rate(count: int, counted: bool) -> float:
            """The reads at ``rate`` and, beside them, the writes at theirs, for as long."""
            if writes is None:
                return await each_at(routes, rate, count, counted)
            written, every = writes
            sent_in, _ = await asyncio.gather(
                each_at(routes, rate, count, counted), each_at(written, every, int(count * every / rate), counted)
            )
            return sent_in

        # This process's own collector must not pause the sender: a full collection over what seeding
        # left behind takes tens of milliseconds, which would count as the server's latency.
        gc.collect()
        gc.freeze()
        # The same load, not counted, first: the connections the rate needs are opened, and each worker
        # collects what its start-up left (its first second under load had 250 ms answers, once).
        await at_rate(int(rate * warm_seconds), counted=False)
        sent_in = await at_rate(total, counted=True)
        gc.unfreeze()
    return {
        "latencies": latencies,
        "errors": errors,
        "sent_rate": total / sent_in if sent_in else 0.0,
        "late": late,
        "first": first,
    }


#: Requests per route sent one at a time to measure what each costs the server (``_one_at_a_time``).
ALONE_PER_ROUTE = 40


def _one_at_a_time(base: str, routes: list[tuple[str, Any]], pid: int) -> dict[str, tuple[float, float]]:
    """Per route, the CPU seconds one request costs the server's processes and PostgreSQL's, sent one at a
    time with nothing else running: the work the rate asks of the machine, whatever the queueing. At
    ``rate`` requests/s spread over the routes, the server and the database need ``rate`` × the mean of
    these of the machine's cores; past what the machine has beside this sender, no server keeps up."""
    costs: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:  # one connection: one worker answers them all
        for name, make in routes:
            for i in range(3):  # not counted: the worker's first answers of a route (its views made)
                method, path, params, headers = make(i)[:4]
                client.request(method, path, params=params, headers=headers).raise_for_status()
            server, database = sum(process_tree_cpu(pid).values()), postgres_cpu()
            for i in range(ALONE_PER_ROUTE):
                method, path, params, headers = make(i)[:4]
                client.request(method, path, params=params, headers=headers).raise_for_status()
            costs[name] = (
                (sum(process_tree_cpu(pid).values()) - server) / ALONE_PER_ROUTE,
                (postgres_cpu() - database) / ALONE_PER_ROUTE,
            )
    return costs


#: Changes sent one at a time to measure what a change costs the server (``_per_change``).
CHANGES = 40


def _request(client: httpx.Client, made: tuple[Any, ...]) -> None:
    method, path, params, headers, *body = made
    client.request(method, path, params=params, headers=headers, json=body[0] if body else None).raise_for_status()


def _server_cpu(pid: int) -> tuple[float, float]:
    return sum(process_tree_cpu(pid).values()), postgres_cpu()


def _spent(since: tuple[float, float], pid: int, count: int) -> tuple[float, float]:
    now = _server_cpu(pid)
    return (now[0] - since[0]) / count, (now[1] - since[1]) / count


def _per_change(
    base: str, routes: list[tuple[str, Any]], writes: list[tuple[str, Any]], pid: int
) -> dict[str, tuple[float, float]]:
    """What a change costs the server's processes and PostgreSQL in CPU, sent one at a time: the write
    (``CHANGES`` updates, nothing between: ``"write"``), a change followed by one request of each read
    route (``"every route"``), and, per route, a change followed by a request of that route alone. Less
    the write and the reads as ``_one_at_a_time`` measured them, what is left is what one worker spends
    catching up with the change. Every worker catches up with every change it has not seen when it next
    answers a route, so at ``W`` changes/s the server needs about ``W`` × (write + workers × catch-up)
    cores beside the reads' (an upper bound: a worker that answers after two changes catches up once)."""
    make = writes[0][1]
    sent = itertools.count()
    spent: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:  # one connection: one worker answers them all
        for _ in range(3):  # not counted: the write path's first use
            _request(client, make(next(sent)))
        for name, asked in [("write", []), ("every route", routes), *((n, [(n, r)]) for n, r in routes)]:
            # Every route caught up first, not counted: a route left out of the groups before would
            # otherwise pay here for all their changes at once (on the façade, past 100 cases, a rebuild).
            for _, route in routes:
                _request(client, route(0))
            since = _server_cpu(pid)
            for _ in range(CHANGES):
                i = next(sent)
                _request(client, make(i))
                for _, route in asked:
                    _request(client, route(i))
            spent[name] = _spent(since, pid, CHANGES)
    return spent


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


@contextmanager
def _served(url: str, workers: int) -> Iterator[tuple[str, int]]:
    """The server's base URL and process id, once it is ready and idle."""
    port = free_port()
    env = {**os.environ, "FHIR_CM_DATABASE_URL": url}
    env.pop("FHIR_CM_FHIR_BASE", None)
    command = [sys.executable, "-c", "from fhir_cm.cli import main; main()", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                raise SystemExit("the server exited during start-up")
            try:
                # Every worker must be ready (each builds its caches): ask on fresh connections until
                # many answers in a row say so.
                if all(httpx.get(f"{base}/readyz", timeout=5).status_code == 200 for _ in range(10 * workers)):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start in time")
            time.sleep(0.3)
        _until_quiet(proc.pid)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


#: Server processes using less than this share of one core are done starting.
QUIET_SHARE = 0.1


def _cpu_seconds(pid: int) -> float:
    return sum(process_tree_cpu(pid).values())


def _until_quiet(pid: int, window: float = 1.0) -> None:
    """Wait until the server's processes are idle. ``/readyz`` answers for the worker a connection
    reaches: a worker that had not yet begun accepting took none of the readiness checks, and built its
    caches during the measurement (every request it took waited seconds, and the other worker's shared
    the cores with it)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    before = _cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = _cpu_seconds(pid)
        if now - before < QUIET_SHARE * window:
            return
        before = now


def _report(label: str, cases: int, args: argparse.Namespace, result: dict[str, Any]) -> None:
    print(
        f"\n{label}: {cases} cases, {args.rate:g} requests/s asked ({result['sent_rate']:.0f} sent) for "
        f"{args.seconds:g} s, {args.workers} worker(s); goal p99 < {GOAL_P99_MS:g} ms"
        + (f"; and {args.writes:g} case updates/s beside" if args.writes else "")
    )
    print(f"  {'route':<30} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}  goal")
    for name, values in result["latencies"].items():
        p99 = _pct(values, 0.99)
        print(
            f"  {name:<30} {len(values):>5} {statistics.median(values) * 1000:>8.1f} {_pct(values, 0.95):>8.1f} "
            f"{p99:>8.1f} {result['errors'][name]:>7}  {'met' if p99 < GOAL_P99_MS else 'NOT met'}"
        )
    if result.get("alone"):
        alone = result["alone"]
        server = statistics.fmean(c[0] for c in alone.values())
        database = statistics.fmean(c[1] for c in alone.values())
        print(
            f"  one request at a time, mean over the routes: {server * 1000:.1f} ms of the server's CPU and "
            f"{database * 1000:.1f} ms of PostgreSQL's ("
            + ", ".join(f"{name} {c[0] * 1000:.1f}+{c[1] * 1000:.1f}" for name, c in alone.items())
            + f"); at {args.rate:g} requests/s they need {(server + database) * args.rate:.2f} of the machine's "
            f"{os.cpu_count()} cores, this sender aside"
            + ("" if label == "PostgreSQL" else " (SQLite works in the server's processes)")
        )
    if result.get("changed"):
        _report_changes(label, args, result["alone"], result["changed"])
    if result.get("first"):
        answers = ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in result["first"].items())
        print(f"  a ready worker's first answer per route, ms (untimed, one at a time): {answers}")
    if result.get("cores"):
        shares = " + ".join(f"{share:.2f}" for share in result["cores"])
        print(f"  server processes' CPU while sending: {shares} cores")
    if result.get("machine"):
        used, stolen = result["machine"]
        print(
            f"  the machine while sending: {used:.2f} of {os.cpu_count()} cores used (server, database, this "
            f"sender), {stolen:.2f} taken by its host (steal)"
        )
    if result.get("late"):
        print(
            f"  this sender: {result['sender_cores']:.2f} cores; it began requests late by p50 "
            f"{_pct(result['late'], 0.5):.1f} ms, p99 {_pct(result['late'], 0.99):.1f} ms (part of the latencies above)"
        )


def _report_changes(
    label: str,
    args: argparse.Namespace,
    alone: dict[str, tuple[float, float]],
    changed: dict[str, tuple[float, float]],
) -> None:
    """What a change costs (``_per_change``), and the cores the reads and the changes need together."""
    write = changed["write"]

    def catch_up(name: str, reads: list[tuple[float, float]]) -> tuple[float, float]:
        return (
            changed[name][0] - write[0] - sum(r[0] for r in reads),
            changed[name][1] - write[1] - sum(r[1] for r in reads),
        )

    every = catch_up("every route", list(alone.values()))
    reads = sum(statistics.fmean(c[side] for c in alone.values()) for side in (0, 1)) * args.rate
    changes = args.writes * (sum(write) + args.workers * sum(every))
    print(
        f"  a change, one at a time (server+PostgreSQL CPU, ms): the write {write[0] * 1000:.1f}+{write[1] * 1000:.1f}; "
        f"a worker's catch-up with it over one request of each route {every[0] * 1000:.1f}+{every[1] * 1000:.1f} "
        "(each route alone after a change: "
        + ", ".join(
            f"{name} {c[0] * 1000:.1f}+{c[1] * 1000:.1f}" for name in alone for c in [catch_up(name, [alone[name]])]
        )
        + f"); at {args.writes:g} changes/s beside {args.rate:g} reads/s, with {args.workers} worker(s) each "
        f"catching up: {changes:.2f} cores for the changes, {reads + changes:.2f} in all of the machine's "
        f"{os.cpu_count()}" + ("" if label == "PostgreSQL" else " (SQLite works in the server's processes)")
    )


def _run_store(label: str, url: str, cases: int, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    seeded = seed_store(url, cases)
    settle_after_bulk_load(url)
    print(f"{label}: seeded {cases} cases in {time.perf_counter() - started:.0f} s", flush=True)
    if args.restarted:
        with _served(url, args.workers):
            pass  # a first start, not measured: it keeps the façade's copies
        settle_after_bulk_load(url)
        print(f"{label}: started once and stopped; measuring the second start", flush=True)
    with _served(url, args.workers) as (base, pid):
        alone = _one_at_a_time(base, _routes(seeded), pid)
        changed = _per_change(base, _routes(seeded), _writes(seeded), pid) if args.writes else None
        _until_quiet(pid)
        before, machine, started = process_tree_cpu(pid), machine_cpu(), time.perf_counter()
        sender = process_cpu(os.getpid())
        result = asyncio.run(
            _open_loop(
                base,
                _routes(seeded),
                args.rate,
                args.seconds,
                warm_rounds=4 * args.workers,
                warm_seconds=args.warmup,
                writes=(_writes(seeded), args.writes) if args.writes else None,
            )
        )
        after, machine_after, took = process_tree_cpu(pid), machine_cpu(), time.perf_counter() - started
        result["sender_cores"] = (process_cpu(os.getpid()) - sender) / took
        result["alone"] = alone
        result["changed"] = changed
    # Each worker's share of a core: the kernel hands each connection to one worker, so the load
    # they carry need not be even, and one at its core's limit queues while the other idles.
    result["cores"] = sorted((after[p] - before.get(p, 0.0)) / took for p in after if after[p] - before.get(p, 0.0) > 0)
    # What the whole machine used, and what its host took: on a virtual machine whose host takes a
    # share of its cores, a load that fits the cores it was sold need not fit what it gets.
    result["machine"] = tuple((b - a) / took for a, b in zip(machine, machine_after, strict=True))
    _report(label, cases, args, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second, all routes together")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to send, counted")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="how long to send first, at the same rate, not counted"
    )
    parser.add_argument("--sqlite-cases", type=int, default=1000)
    parser.add_argument("--pg-cases", type=int, default=10000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--workers", type=int, default=2, help="`fhir-cm serve --workers N` on both stores")
    parser.add_argument(
        "--restarted",
        action="store_true",
        help="measure a server started a second time (a restart): the first start, not measured, keeps "
        "the façade's copies of every case, and the database is settled after it as after the seeding",
    )
    parser.add_argument(
        "--writes",
        type=float,
        default=0.0,
        help="case updates per second sent beside the reads (a supervisor's PATCH of a plan summary, a case "
        "each time): every worker then catches up with a changed store between reads; 0, none",
    )
    args = parser.parse_args()
    each_store(args, _run_store)


if __name__ == "__main__":
    main()
