"""Pull memory and throughput: ``fhir_cm.sync.pull`` of N resources against a baseline that loads the
whole result set into memory first, at two sizes or more, on the real test server (sekmet-fhir, started
here on loopback), in the same run.

Run: ``python benchmarks/bench_pull.py [--sizes 2500,10000] [--traced] [--hapi 10000]``, or
``--update 2000,10000`` for the update pull instead (``bench_pull_update.py``). Prints
resources/s, peak RSS (with ``--traced`` also peak traced Python memory, from tracemalloc) and the
server's CPU time over the run's wall time ("server busy") of the server's own pace (the pull's
searches, every page fetched and parsed, nothing else), of the pull and of the baseline, at each of
``--sizes`` (the server seeded up to each in turn), and the pull's rate over the server's pace; the point is to see
whether the pull's memory stays flat as N grows (it streams one page at a time) while the
baseline's grows with N. It does not assert. About 4 minutes on 2 cores; ``--traced`` about 8
(tracemalloc slows the pull several times over).

How it measures: the server runs in this process; every measurement runs in a fresh child process
(``python -c``, importing this module), so the peak RSS is the pull's own and not the server's or
another run's, and a check worker the pull starts imports what it would under the ``fhir-cm``
command, not this benchmark (a spawned process re-imports its parent's main module: this one would
bring the test servers and the whole adapter into the worker); "growth" is
the peak RSS during the run minus the RSS just before it (imports done). The peak is the child's
``VmHWM``: ``ru_maxrss`` would include the RSS of this (server) process, which Linux carries over
the fork and exec that start the child. With ``--traced`` the
resources/s are measured under tracemalloc too, for both sides alike: compare them as a ratio. Seeding (whole synthetic cases, mapped with the adapter's mapping and its identifier,
sent as one transaction per case) is not measured.

Then (unless ``--hapi 0``) the pull against the pace of HAPI FHIR JPA R4 (``tests/hapi_server.py``,
started here; its CPU is its JVM's, from ``/proc``), seeded by the adapter's own push with about
``--hapi`` resources (HAPI holds referential integrity: a case's patient and parties must be there):
one untimed pass of the server's pace first (HAPI's JIT), then two rounds of the pace and the pull.

The baseline does what a pull without streaming would: every page of every case type fetched into
one list, then the cases read from it (``resources_to_case``) and saved, with their server copies,
to a fresh store.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.processes import ChildPeaks, children_cpu, current_rss_kb, peak_rss_kb
from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import case_to_bundle, resource_key, resources_to_case
from fhir_cm.process import tune_collector
from fhir_cm.store import LedgerEntry, content_hash, open_store, put_ledger, save_case
from fhir_cm.sync import CASE_RESOURCE_TYPES, pull, push_cases
from fhir_cm.sync._pull import PAGE_SIZE as PULL_PAGE
from fhir_cm.synthetic import generate_cases
from tests.servers import sekmet_server

PAGE = 200

#: One size's measurements: resources on the server, the server's pace, the pull, the baseline.
Row = tuple[int, dict[str, float], dict[str, float], dict[str, float]]


# --- seeding (not measured) ----------------------------------------------------------------------


def case_batches(system: str, seed: int) -> Iterator[tuple[dict[str, Any], int]]:
    """``(transaction Bundle, resources in it)`` per synthetic case, without ``ifNoneExist``: the
    identifier system is new, so nothing can match, and sekmet cannot search Goal or CareTeam by it."""
    for case in generate_cases(100_000, seed=seed):
        bundle = case_to_bundle(case, "R4", system)
        for entry in bundle["entry"]:
            entry["request"].pop("ifNoneExist", None)
        yield bundle, len(bundle["entry"])


async def seed(base: str, batches: Iterator[tuple[dict[str, Any], int]], until: int, have: int) -> int:
    """Send whole cases until at least ``until`` resources are on the server; returns the count."""
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        while have < until:
            bundle, n = next(batches)
            await client.post_bundle(bundle, safe=False)
            have += n
    return have


async def seed_by_push(base: str, system: str, db: Path, seed_: int, until: int) -> int:
    """Push whole synthetic cases with the adapter until at least ``until`` of their resources are on
    the server (HAPI holds referential integrity: a case's patient and parties must be written too,
    which the push does); returns the count."""
    settings = Settings(database_url=f"sqlite:///{db}", fhir_base=base, identifier_system=system, fhir_version="R4")
    have, cases = 0, generate_cases(100_000, seed=seed_)
    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(base) as client:
            while have < until:
                batch = [next(cases) for _ in range(50)]
                report = await push_cases(store, client, settings, batch)
                if report.failures:
                    raise SystemExit(f"seeding failed: {report.failures[0].reason}")
                have += sum(len(case_to_bundle(case, "R4", system)["entry"]) for case in batch)
    return have


# --- what is measured (in a child process) -------------------------------------------------------


async def run_pull(base: str, system: str, db: Path) -> int:
    settings = Settings(database_url=f"sqlite:///{db}", fhir_base=base, identifier_system=system, fhir_version="R4")
    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(base, enforce_capabilities=False) as client:
            report = await pull(store, client, settings)
    if report.quarantined or report.unplaced:
        raise SystemExit(f"pull: {report.quarantined} quarantined, {report.unplaced} unplaced")
    return report.fetched


async def run_baseline(base: str, system: str, db: Path) -> int:
    """Everything in one list first, then grouped by patient (one case each here), read and saved."""
    everything: list[dict[str, Any]] = []
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        for rtype in CASE_RESOURCE_TYPES:
            async for r in client.search(rtype).where("identifier", f"{system}|").count(PAGE):
                if any(i.get("system") == system for i in r.get("identifier") or ()):
                    everything.append(r)
    by_patient: dict[str, list[dict[str, Any]]] = {}
    for r in everything:
        ref = (r.get("patient") or r.get("subject") or r.get("for") or {}).get("reference")
        if ref is None and r["resourceType"] == "CareTeam":
            ref = r["subject"]["reference"]
        by_patient.setdefault(str(ref), []).append(r)
    with open_store(f"sqlite:///{db}") as store, store.session() as s:
        for resources in by_patient.values():
            case = resources_to_case(resources, "R4", system)
            save_case(s, case, enqueue=False)
            entries = []
            for r in resources:
                key = resource_key(r, system)
                assert key is not None
                entries.append(
                    LedgerEntry(
                        server_base=base,
                        resource_type=key.type,
                        key=key.value,
                        case_id=case.id,
                        server_id=r["id"],
                        version_id=r["meta"]["versionId"],
                        content_hash=content_hash(r),
                        server_copy=r,
                    )
                )
            put_ledger(s, entries)
    return len(everything)


async def run_server_pace(base: str, system: str, db: Path) -> int:
    """The server's pace: the pull's searches (same parameters, same page size), every page fetched
    and parsed, nothing done with it — as fast as that server hands them out to one client."""
    n = 0
    async with AsyncFhirClient(base, enforce_capabilities=False) as client:
        for rtype in CASE_RESOURCE_TYPES:
            async for page in client.search(rtype).where("identifier", f"{system}|").count(PULL_PAGE).pages():
                n += len(page.matches)
    return n


def child(mode: str, base: str, system: str, db: str, traced: bool) -> None:
    """One measurement, with the collector settings of the ``fhir-cm`` command (``fhir_cm.process``);
    says ``start`` on stdout when it starts timing, then its figures as JSON."""
    tune_collector()
    if mode == "update":
        from bench_pull_update import run_update  # this directory is on the path: see ``_CHILD``

        job: Callable[[str, str, Path], Awaitable[int | dict[str, float]]] = run_update
    else:
        job = {"pull": run_pull, "baseline": run_baseline, "server": run_server_pace}[mode]
    before_kb = current_rss_kb()
    if traced:
        tracemalloc.start()
    print(f"{_MARK}start", flush=True)
    t0, cpu0, children0 = time.perf_counter(), time.process_time(), children_cpu()
    with ChildPeaks() as helpers_rss:
        done = asyncio.run(job(base, system, Path(db)))
    extra = done if isinstance(done, dict) else {"n": done}
    seconds = time.perf_counter() - t0
    cpu, helpers = time.process_time() - cpu0, children_cpu() - children0
    traced_peak = tracemalloc.get_traced_memory()[1] if traced else 0
    peak_kb = peak_rss_kb()
    figures = {
        **extra,
        "seconds": seconds,
        "peak_mb": peak_kb / 1024,
        "grew_mb": (peak_kb - before_kb) / 1024,
        "traced_mb": traced_peak / 2**20,
        "cpu": cpu,
        "helper_cpu": helpers,
        "helper_mb": helpers_rss.mb,
        "tracker_mb": helpers_rss.tracker_mb,
    }
    print(f"{_MARK}{json.dumps(figures)}", flush=True)


#: What starts a line of the child's that is meant for the parent (the rest of stdout is passed on).
_MARK = "@bench_pull@ "
_CHILD = "import sys; sys.path.insert(0, sys.argv[1]); import bench_pull; bench_pull.child(*sys.argv[2:6], sys.argv[6] == '1')"


def measure(
    mode: str,
    base: str,
    system: str,
    tmp: Path,
    traced: bool,
    server_cpu: Callable[[], float] = time.process_time,
    *,
    db: Path | None = None,
) -> dict[str, float]:
    """One measurement in a fresh child process; ``server_cpu`` gives the server's CPU time so far
    (by default this process's: sekmet runs here, and nothing else does while a child is timed).
    ``db``: the store to pull into (by default a fresh one)."""
    db = db or tmp / f"{mode}-{uuid.uuid4().hex}.db"
    args = [
        sys.executable,
        "-c",
        _CHILD,
        str(Path(__file__).parent),
        mode,
        base,
        system,
        str(db),
        "1" if traced else "0",
    ]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        said = _said(proc.stdout)
        started = next(said, None)
        cpu0 = server_cpu()
        profiler = _profiler(mode, proc.pid)
        figures = next(said, None)
        if profiler is not None:
            profiler.wait()
        answer = json.loads(figures) if started == "start" and figures else None
        answer_cpu = server_cpu() - cpu0
    if answer is None or proc.returncode != 0:
        raise SystemExit(f"{mode} failed (exit code {proc.returncode}; its error is above)")
    answer["server_cpu"] = answer_cpu
    return answer


def _profiler(mode: str, pid: int) -> subprocess.Popen[bytes] | None:
    """``BENCH_PULL_PROFILE=<mode>:<file>``: py-spy samples that measurement's child into ``file``
    (collapsed stacks), its figures then slowed by the sampling: for finding where the time goes."""
    wanted, _, out = os.environ.get("BENCH_PULL_PROFILE", "").partition(":")
    if wanted != mode or not out:
        return None
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--format", "raw", "-o", out, "--idle", "--threads"]
    )


def _said(lines: Iterable[str]) -> Iterator[str]:
    """The child's lines meant for the parent; the rest of its output is printed as it comes."""
    for line in lines:
        if line.startswith(_MARK):
            yield line.removeprefix(_MARK).strip()
        else:
            print(line, end="")


def line(label: str, r: dict[str, float]) -> str:
    return (
        f"  {label:<9}: {r['n']:6.0f} resources {r['n'] / r['seconds']:8.1f} resources/s  "
        f"peak RSS {r['peak_mb']:6.1f} MB (+{r['grew_mb']:5.1f} MB during the run"
        + (
            f"; check worker {r['helper_mb'] - r['tracker_mb']:5.1f} MB, resource tracker {r['tracker_mb']:4.1f} MB"
            if r.get("helper_mb")
            else ""
        )
        + ")  "
        f"server busy {100 * r['server_cpu'] / r['seconds']:3.0f}%"
        + (f"  peak traced {r['traced_mb']:6.1f} MB" if r["traced_mb"] else "")
    )


def _grown(r: dict[str, float]) -> float:
    return r["grew_mb"] + r.get("helper_mb", 0.0)


def bound(pulled: dict[str, float], pace: dict[str, float]) -> str:
    """The fastest the pull could go on this machine, for the CPU it and the server spend per resource.

    The pull's work (its process and its check worker) and the server's share the machine's cores,
    and the server works on one thread: at best the rate is the smallest of the server's pace,
    (cores / CPU per resource of both together) and (1 / the pull process's CPU per resource: Python
    runs one thread of it at a time). The pull reaching the server's pace needs the first to be the
    smallest.
    """
    n = pulled["n"]
    ours = (pulled["cpu"] + pulled["helper_cpu"]) / n
    server = pulled["server_cpu"] / n
    cores = os.cpu_count() or 1
    best = min(pace["n"] / pace["seconds"], cores / (ours + server), n / pulled["cpu"])
    return (
        f"  CPU per resource: the pull {1000 * ours:.2f} ms (its process {1000 * pulled['cpu'] / n:.2f}, "
        f"check worker {1000 * pulled['helper_cpu'] / n:.2f}), the server {1000 * server:.2f} ms; on {cores} cores "
        f"the pull can run at most at {best:.0f}/s = {best / (pace['n'] / pace['seconds']):.2f}x the server's pace, "
        f"and it runs at {n / pulled['seconds'] / best:.2f}x that"
    )


def hapi_pace(n: int, traced: bool) -> None:
    """The pull against the server's pace on HAPI FHIR JPA R4 (H2 in memory, the tests' JVM options),
    seeded with about ``n`` resources by the adapter's push. HAPI's CPU is its JVM's, every thread."""
    from benchmarks.processes import process_cpu
    from tests.hapi_server import hapi_server

    system = f"urn:bench:pull:{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory() as tmp, hapi_server("R4") as server:
        cpu = functools.partial(process_cpu, int(server.settings["pid"]))
        t0 = time.perf_counter()
        have = asyncio.run(seed_by_push(server.base_url, system, Path(tmp) / "seed.db", 4343, n))
        print(f"seeded HAPI with {have} resources ({time.perf_counter() - t0:.0f}s, not measured)", file=sys.stderr)
        measure("server", server.base_url, system, Path(tmp), traced, cpu)  # warms HAPI's search paths up
        runs = [
            (
                measure("server", server.base_url, system, Path(tmp), traced, cpu),
                measure("pull", server.base_url, system, Path(tmp), traced, cpu),
            )
            for _ in range(2)
        ]
    print("pull from HAPI FHIR JPA R4 on loopback (H2 in memory, JVM options of tests/hapi_server.py; its CPU over")
    print(
        f'every thread, so "server busy" can pass 100% on {os.cpu_count()} cores); after one untimed pass, two rounds:'
    )
    for pace, pulled in runs:
        print(line("server", pace) + "  (its pace)")
        print(line("pull", pulled))
        rate = (pulled["n"] / pulled["seconds"]) / (pace["n"] / pace["seconds"])
        print(f"  the pull runs at {rate:.2f}x the server's pace")


def _sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",")]
    if len(sizes) < 2 or sizes != sorted(set(sizes)):
        raise argparse.ArgumentTypeError("two sizes or more, smallest first, e.g. 10000,30000,100000")
    return sizes


def _update_sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description="Pull memory and throughput against a load-everything baseline.")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=[2_500, 10_000],
        help="resources on the server at each step (default 2500,10000)",
    )
    parser.add_argument("--traced", action="store_true", help="Also print peak traced memory (tracemalloc; slower).")
    parser.add_argument(
        "--hapi", type=int, default=10_000, help="then pull about this many resources from HAPI R4 (0: not)"
    )
    parser.add_argument(
        "--update",
        type=_update_sizes,
        help="instead: the update pull (a second pull after ~10%% changed) at these sizes, e.g. 2000,10000",
    )
    args = parser.parse_args()
    if args.update:
        from benchmarks.bench_pull_update import update_pulls

        update_pulls(args.update)
        return
    traced = args.traced
    system = f"urn:bench:pull:{uuid.uuid4().hex}"
    batches = case_batches(system, seed=4242)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, sekmet_server(Path(tmp)) as server:
        have = 0
        for target in args.sizes:
            t0 = time.perf_counter()
            have = asyncio.run(seed(server.base_url, batches, target, have))
            print(f"seeded {have} resources ({time.perf_counter() - t0:.0f}s, not measured)", file=sys.stderr)
            pace = measure("server", server.base_url, system, Path(tmp), traced)
            pulled = measure("pull", server.base_url, system, Path(tmp), traced)
            baseline = measure("baseline", server.base_url, system, Path(tmp), traced)
            rows.append((have, pace, pulled, baseline))
    print(
        "pull from sekmet-fhir on loopback (each measurement in a fresh process"
        f"{', timed under tracemalloc' if traced else ''})"
    )
    for have, pace, pulled, baseline in rows:
        print(f" {have} resources on the server:")
        print(line("server", pace) + "  (its pace: pages fetched, nothing done with them)")
        print(line("pull", pulled))
        print(line("baseline", baseline))
        rate = (pulled["n"] / pulled["seconds"]) / (pace["n"] / pace["seconds"])
        print(f"  the pull runs at {rate:.2f}x the server's pace (goal: 1.0, the server never waiting for it)")
        print(bound(pulled, pace))
    growth(rows, traced)
    if args.hapi:
        hapi_pace(args.hapi, traced)


def growth(rows: list[Row], traced: bool) -> None:
    """How memory changes with the number of resources: flat, for the pull, is the goal."""
    sizes = " -> ".join(str(have) for have, *_ in rows)
    print(f" memory by size ({sizes} resources):")
    for label, col in (("pull", 2), ("baseline", 3)):
        runs = [row[col] for row in rows]
        print(
            f"  {label:<9}: peak RSS {_by(runs, 'peak_mb')} MB; helper processes' peaks {_by(runs, 'helper_mb')} MB;"
            f" growth with them {' -> '.join(f'{_grown(r):.1f}' for r in runs)} MB"
            + (f"; peak traced {_by(runs, 'traced_mb')} MB" if traced else "")
        )
    small, (big, _, p_big, b_big) = rows[0][0], rows[-1]
    print(
        f"  ({big / small:.1f}x the resources; growth is the peak during the run less the RSS before it,"
        " plus the helper processes' peaks: the check worker and multiprocessing's resource tracker)"
    )
    if traced:
        print(
            f"  at {big}: the pull's peak traced memory is {p_big['traced_mb'] / b_big['traced_mb']:.2f}x the baseline's"
        )
    print(
        f"  at {big}: the pull's throughput is "
        f"{(p_big['n'] / p_big['seconds']) / (b_big['n'] / b_big['seconds']):.2f}x the baseline's"
    )


def _by(runs: list[dict[str, float]], key: str) -> str:
    return " -> ".join(f"{r.get(key, 0.0):.1f}" for r in runs)


if __name__ == "__main__":
    main()
