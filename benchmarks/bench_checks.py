"""The per-resource CPU of what a pull does to each resource it takes in, against the cost of parsing it.

Run: ``python benchmarks/bench_checks.py [--resources N] [--rounds R]``. Takes the resources of whole
synthetic cases as the pull's benchmark seeds them (R4, ``case_to_bundle``) and times, per resource,
the best of ``--rounds`` passes over all of them (CPU time of this process, so another process on the
machine slows it less than wall time would):

* ``orjson round trip`` — ``orjson.loads(orjson.dumps(…))`` of the whole list: the floor, what any
  reader of JSON pays;
* ``strict check`` — ``checks.strict_problem``: the release's fhir.resources model (the single largest
  cost of a pull);
* ``mapping check`` — ``checks.mapping_problem``: the mapping reading the resource as case data;
* ``references`` — ``mapping.iter_references``, which the pull walks each resource with more than once.

It prints each per resource and as a multiple of the round trip, and does not assert. The point is to
see where a pull's CPU per resource goes, beside ``bench_pull.py``'s CPU per resource of the whole pull
(a pull keeps pace with a server only where its CPU per resource is no more than the server's).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fhir_cm.checks import mapping_problem, strict_problem
from fhir_cm.mapping import case_to_bundle, iter_references
from fhir_cm.synthetic import generate_cases

SYSTEM = "urn:bench:checks"


def resources(n: int) -> list[dict[str, Any]]:
    """At least ``n`` resources of whole synthetic cases, R4, as a pull would read them."""
    out: list[dict[str, Any]] = []
    for case in generate_cases(100_000, seed=7):
        out += [entry["resource"] for entry in case_to_bundle(case, "R4", SYSTEM)["entry"]]
        if len(out) >= n:
            return out
    return out


def best_per_resource(job: Callable[[], object], n: int, rounds: int) -> float:
    """The least CPU time of ``rounds`` runs of ``job``, per resource, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        job()
        best = min(best, time.process_time() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    taken = resources(args.resources)
    n = len(taken)
    for r in taken[:200]:  # the models and the mapping loaded before anything is timed
        strict_problem(r, "R4")
        mapping_problem(r, "R4", SYSTEM)
    jobs: dict[str, Callable[[], object]] = {
        "orjson round trip": lambda: orjson.loads(orjson.dumps(taken)),
        "strict check": lambda: [strict_problem(r, "R4") for r in taken],
        "mapping check": lambda: [mapping_problem(r, "R4", SYSTEM) for r in taken],
        "references": lambda: [list(iter_references(r)) for r in taken],
    }
    print(f"{n} resources of synthetic cases (R4), best of {args.rounds} rounds, CPU time per resource")
    floor = None
    for name, job in jobs.items():
        us = best_per_resource(job, n, args.rounds)
        floor = us if floor is None else floor
        print(f"  {name:<18} {us:8.1f} us   {us / floor:6.1f}x the round trip")


if __name__ == "__main__":
    main()
