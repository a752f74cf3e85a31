"""How long ``fhir-cm serve`` takes to be ready, started again and again on one store, as a deployment
restarts it.

    python benchmarks/bench_startup.py [--store sqlite|postgres|all] [--sqlite-cases 1000]
                                       [--pg-cases 10000] [--workers N (default 2)] [--changed 100]

Each worker warms its caches before ``/readyz`` says ready: it decodes the cases, goes through them for
the day's worklist, caseload and outcomes, and indexes every case for the FHIR façade. Indexing
maps each case to FHIR, unless the store kept the copy an earlier start made of it (``facade_copies``).
So, on a store seeded with synthetic cases (PostgreSQL: vacuumed, analysed and checkpointed after
seeding), it times from the command until every worker answers ready:

* the **first** start: no copy kept; every case mapped, and its copy kept (the baseline);
* a **second** start, nothing changed: every case read from its copy;
* a **third**, after ``--changed`` cases were saved again with a change: those mapped, the rest read.

It prints the three times, the ratio of each to the first, the server's CPU time over each start,
and the size of what the store keeps. It does not assert: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.stores import each_store, free_port, seed_store, settle_after_bulk_load  # noqa: E402
from benchmarks.processes import process_tree_cpu  # noqa: E402
from fhir_cm.store import get_case, open_store, save_case  # noqa: E402
from fhir_cm.store._tables import FacadeCopyRow  # noqa: E402

STARTUP_SECONDS = 600


def _start(url: str, workers: int) -> tuple[float, float]:
    """Seconds from the command until every worker is ready, and the CPU seconds its processes used."""
    port = free_port()
    env = {**os.environ, "FHIR_CM_DATABASE_URL": url}
    env.pop("FHIR_CM_FHIR_BASE", None)
    command = [sys.executable, "-c", "from fhir_cm.cli import main; main()", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    began = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("the server exited during start-up")
            try:
                # Every worker must be ready: ask on fresh connections until many answers in a row say so.
                base = f"http://127.0.0.1:{port}/readyz"
                if all(httpx.get(base, timeout=5).status_code == 200 for _ in range(10 * workers)):
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - began > STARTUP_SECONDS:
                raise SystemExit("the server did not start in time")
            time.sleep(0.2)
        took = time.perf_counter() - began
        return took, sum(process_tree_cpu(proc.pid).values())
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _change(url: str, case_ids: list[str], count: int) -> None:
    with open_store(url) as store, store.session() as s:
        for case_id in case_ids[:count]:
            case = get_case(s, case_id)
            save_case(s, case.model_copy(update={"plan_summary": "Reviewed at the monthly meeting."}), enqueue=False)


def _kept(url: str) -> tuple[int, int]:
    with open_store(url) as store, store.session(read_only=True) as s:
        rows, size = s.execute(select(func.count(), func.sum(func.length(FacadeCopyRow.payload)))).one()
    return int(rows), int(size or 0)


def _run_store(label: str, url: str, cases: int, args: argparse.Namespace) -> None:
    seeded: dict[str, Any] = seed_store(url, cases)
    settle_after_bulk_load(url)
    print(f"\n{label}: {cases} cases, `fhir-cm serve --workers {args.workers}`, until every worker is ready")
    first, first_cpu = _start(url, args.workers)
    rows, size = _kept(url)
    _line("first start (every case mapped, copies kept)", first, first_cpu)
    print(f"    kept: {rows} copies, {size / 1e6:.1f} MB")
    second, second_cpu = _start(url, args.workers)
    _line("second start (nothing changed)", second, second_cpu, first)
    _change(url, seeded["cases"], args.changed)
    third, third_cpu = _start(url, args.workers)
    _line(f"third start ({args.changed} cases changed)", third, third_cpu, first)


def _line(label: str, seconds: float, cpu: float, first: float | None = None) -> None:
    ratio = "" if first is None else f"  {first / seconds:.1f}x the first's speed"
    print(f"  {label + ':':<48}{seconds:6.1f} s  ({cpu:6.1f} s CPU){ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite-cases", type=int, default=1000)
    parser.add_argument("--pg-cases", type=int, default=10000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--changed", type=int, default=100, help="cases changed before the third start")
    args = parser.parse_args()
    each_store(args, _run_store)


if __name__ == "__main__":
    main()
