"""What reading stored cases costs per case: decoded from their rows, and kept in the case cache.

Run: ``python benchmarks/bench_case_reads.py [--cases 2000] [--rounds 5]``. Seeds a SQLite store (a
temporary file) with synthetic cases and reads them all with ``store.get_case_records`` through the
store's case cache, as the API's views and lists do: once with the cache empty (each case decoded from
its JSON and validated), then again with every case kept at its revision (only the rows' revisions
read). It prints the best of ``--rounds`` of each, in this process's CPU per case, beside the floor of
the second: the same query of the rows' revisions and times alone. A kept case should cost little more
than that floor; it does not assert.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from fhir_cm.store import CaseCache, get_case_records, open_store, save_case  # noqa: E402
from fhir_cm.store._tables import CaseRow  # noqa: E402
from fhir_cm.synthetic import generate_cases  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{Path(tmp) / 'reads.db'}") as store:
        ids = []
        with store.session() as session:
            for case in generate_cases(args.cases, seed=7):
                save_case(session, case, enqueue=False)
                ids.append(case.id)

        def best(read: Callable[[], None]) -> float:
            times = []
            for _ in range(args.rounds):
                started = time.process_time()
                read()
                times.append(time.process_time() - started)
            return min(times) / len(ids)

        def decoded() -> None:
            with store.session(read_only=True) as session:
                get_case_records(session, ids, cache=CaseCache(0))  # a cache that keeps nothing

        store.cases = CaseCache(len(ids))
        with store.session(read_only=True) as session:
            get_case_records(session, ids, cache=store.cases)  # every case kept

        def kept() -> None:
            with store.session(read_only=True) as session:
                get_case_records(session, ids, cache=store.cases)

        def floor() -> None:
            heads = select(CaseRow.case_id, CaseRow.revision, CaseRow.created_at, CaseRow.updated_at)
            with store.session(read_only=True) as session:
                for n in range(0, len(ids), 500):
                    session.execute(heads.where(CaseRow.case_id.in_(ids[n : n + 500]))).all()

        read_whole, read_kept, read_floor = best(decoded), best(kept), best(floor)
        print(f"{len(ids)} cases on SQLite, this process's CPU per case, best of {args.rounds}:")
        print(f"  decoded from its row      {read_whole * 1e6:8.1f} µs")
        print(f"  kept in the case cache    {read_kept * 1e6:8.1f} µs")
        print(f"  its row's revision alone  {read_floor * 1e6:8.1f} µs (the floor of a kept case)")
        print(
            f"  a kept case: {read_kept / read_floor:.1f}× the floor, {read_whole / read_kept:.0f}× less than decoded"
        )


if __name__ == "__main__":
    main()
