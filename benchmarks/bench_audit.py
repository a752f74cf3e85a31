"""What one transaction of audit rows costs, written as an ``INSERT`` and by ``COPY``, per group size.

Run: ``python benchmarks/bench_audit.py [--sizes 1,2,5,20,50] [--transactions 300] [--rounds 3]``. Needs
the PostgreSQL server the tests use (``tests/pg.py``) and gets a database of its own. For each group
size, in alternating rounds, it writes ``--transactions`` transactions of that many rows each way
(``store._audit.write_audit_rows`` takes the first below ``COPY_FROM`` rows, the second from there on) and prints the
CPU per transaction of this process and of PostgreSQL's. Every audited request writes one such group
(or shares one with the requests waiting beside it, ``store.AuditGroup``): a read of one case one row,
a page of cases a row per case. ``COPY_FROM`` is where the copy starts to cost less; the benchmark does
not assert.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from benchmarks.processes import postgres_cpu  # noqa: E402
from fhir_cm.store import Store, open_store  # noqa: E402
from fhir_cm.store._audit import _AUDIT_TABLE, COPY_FROM, _copy, audit_rows  # noqa: E402


def _insert(session: Session, rows: list[dict[str, object]]) -> None:
    """The ``INSERT`` ``write_audit_rows`` runs below ``COPY_FROM`` rows."""
    session.execute(insert(_AUDIT_TABLE), rows)


def _per_transaction(
    store: Store, size: int, transactions: int, write: Callable[[Session, list[dict[str, object]]], None]
) -> tuple[float, float]:
    """CPU seconds per transaction of ``size`` rows: this process's, PostgreSQL's."""
    rows = audit_rows(
        principal="bench-key", action="list", case_ids=[f"case-{n:05}" for n in range(size)], request_id="r" * 32
    )
    mine, theirs = time.process_time(), postgres_cpu()
    for _ in range(transactions):
        with store.session() as session:
            write(session, rows)
    return (time.process_time() - mine) / transactions, (postgres_cpu() - theirs) / transactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,2,5,20,50", help="rows per transaction, comma-separated")
    parser.add_argument("--transactions", type=int, default=300, help="transactions per size, way and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from tests.pg import postgres_admin_url, temporary_database

    if isinstance(postgres_admin_url(), str):
        raise SystemExit(f"no PostgreSQL: {postgres_admin_url()}")
    with temporary_database("fhir_cm_bench") as url, open_store(url) as store:
        _per_transaction(store, 5, args.transactions, _insert)  # not counted: connections and plans made
        _per_transaction(store, 5, args.transactions, _copy)
        print(f"audit rows on PostgreSQL: CPU per transaction, ms (this process + PostgreSQL); COPY_FROM = {COPY_FROM}")
        print(f"  {'rows':>5}  {'INSERT':>13}  {'COPY':>13}  {'written now':>11}")
        for size in (int(s) for s in args.sizes.split(",")):
            for _ in range(args.rounds):
                inserted = _per_transaction(store, size, args.transactions, _insert)
                copied = _per_transaction(store, size, args.transactions, _copy)
                now = "COPY" if size >= COPY_FROM else "INSERT"
                print(
                    f"  {size:>5}  {inserted[0] * 1000:5.2f} + {inserted[1] * 1000:4.2f}  "
                    f"{copied[0] * 1000:5.2f} + {copied[1] * 1000:4.2f}  {now:>11}"
                )


if __name__ == "__main__":
    main()
