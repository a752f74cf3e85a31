"""What the API benchmarks share: a store seeded with synthetic cases and API keys, settled after the
load as an administrator would, on SQLite and on the tests' PostgreSQL in turn; a free port to serve on."""

from __future__ import annotations

import argparse
import contextlib
import socket
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from fhir_cm.store import ApiRole, create_api_key, open_store, save_case
from fhir_cm.synthetic import generate_cases

__all__ = ["each_store", "free_port", "seed_store", "settle_after_bulk_load"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_store(url: str, cases: int) -> dict[str, Any]:
    """The store holds ``cases`` synthetic cases and three keys (a supervisor, a service, the case manager with the
    most open cases); returns the keys and some ids to ask for."""
    case_ids, patients = [], []
    managers: Counter[str] = Counter()
    with open_store(url) as store:
        batch: list[Any] = []
        for case in generate_cases(cases, seed=42):
            batch.append(case)
            case_ids.append(case.id)
            patients.append(case.patient.id)
            if case.is_open and case.case_manager is not None:
                managers[case.case_manager.id] += 1
            if len(batch) == 200:
                with store.session() as s:
                    for c in batch:
                        save_case(s, c, enqueue=False)
                batch = []
        with store.session() as s:
            for c in batch:
                save_case(s, c, enqueue=False)
            _, supervisor = create_api_key(s, name="bench-supervisor", role=ApiRole.SUPERVISOR)
            _, service = create_api_key(s, name="bench-service", role=ApiRole.SERVICE)
            busiest, _ = managers.most_common(1)[0]
            _, manager = create_api_key(s, name="bench-manager", role=ApiRole.CASE_MANAGER, practitioner_id=busiest)
    return {"supervisor": supervisor, "service": service, "manager": manager, "cases": case_ids, "patients": patients}


def settle_after_bulk_load(url: str) -> None:
    """What a database administrator does after a bulk load, so that the measurement does not overlap
    PostgreSQL's own catching up (autovacuum and analyze of the fresh tables, a checkpoint of the load)."""
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
            with contextlib.suppress(DBAPIError):  # CHECKPOINT needs a superuser (or pg_checkpoint)
                conn.execute(text("CHECKPOINT"))
    finally:
        engine.dispose()


def each_store(args: argparse.Namespace, run: Callable[[str, str, int, argparse.Namespace], None]) -> None:
    """``run(label, url, cases, args)`` on a SQLite file of ``--sqlite-cases`` and a PostgreSQL database of
    ``--pg-cases`` (created, then dropped), as ``--store`` asks; PostgreSQL skipped, saying why, when the
    tests' server is not there."""
    if args.store in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args.sqlite_cases, args)
    if args.store in ("postgres", "all"):
        from tests.pg import postgres_admin_url, temporary_database

        if isinstance(postgres_admin_url(), str):
            print(f"\nPostgreSQL: skipped ({postgres_admin_url()})")
            return
        with temporary_database() as url:
            run("PostgreSQL", str(url), args.pg_cases, args)
