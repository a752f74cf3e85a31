"""A case's ledger entries are read through (server_base, case_id), not by reading every entry of
the server: the pull's merges and the push's preparation must not slow as the ledger grows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from fhir_cm.store import list_ledger, open_store


def test_reading_cases_ledgers_uses_the_server_and_case_index(tmp_path: Path) -> None:
    statements: list[tuple[str, Any]] = []
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        engine = store.engine

        def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            if "FROM sync_ledger" in statement:
                statements.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", seen)
        with store.session(read_only=True) as s:
            list_ledger(s, "http://fhir.example/r4", case_ids=["a", "b"])
            list_ledger(s, "http://fhir.example/r4", case_id="a")
        event.remove(engine, "before_cursor_execute", seen)
        assert len(statements) == 2
        with engine.connect() as conn:
            for statement, parameters in statements:
                plan = " ".join(
                    str(row[3]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                )
                assert "ix_sync_ledger_server_case" in plan, plan
