"""Schema migrations: created at head on an empty database, a no-op after, and no drift from the models."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic import command
from sqlalchemy import event, inspect, text

from fhir_cm.store import SchemaMismatch, alembic_config, head_revision, open_store
from fhir_cm.store._engine import make_engine
from fhir_cm.store._migrate import VERSION_TABLE, current_revision, schema_drift, upgrade
from fhir_cm.store._tables import Base
from tests.store.concurrency import run_together

TABLES = {t.name for t in Base.metadata.sorted_tables}


def test_open_store_creates_the_schema_at_head(empty_url: str) -> None:
    with open_store(empty_url) as store, store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert set(inspect(conn).get_table_names()) == TABLES | {VERSION_TABLE}


def test_opening_again_runs_no_ddl(empty_url: str) -> None:
    open_store(empty_url).close()
    engine = make_engine(empty_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert upgrade(engine) == head_revision()
    engine.dispose()
    ddl = [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP", "INSERT", "UPDATE"))]
    assert statements and ddl == []


def test_models_and_migrations_agree(empty_url: str) -> None:
    with open_store(empty_url) as store, store.engine.connect() as conn:
        assert schema_drift(conn) == []


def test_drift_check_notices_a_missing_index(empty_url: str) -> None:
    """The drift check can fail: without this, an empty result above would prove nothing."""
    with open_store(empty_url) as store, store.engine.connect() as conn:
        conn.execute(text("DROP INDEX uq_outbox_open_case"))
        drift = schema_drift(conn)
    assert [d[0] for d in drift] == ["add_index"]
    assert drift[0][1].name == "uq_outbox_open_case"


def test_concurrent_first_opens_migrate_once(empty_url: str) -> None:
    def open_it(_n: int, go: Callable[[], object]) -> None:
        go()
        open_store(empty_url).close()

    run_together(3, open_it)
    with open_store(empty_url) as store, store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_a_schema_from_newer_code_is_refused(empty_url: str) -> None:
    with open_store(empty_url) as store, store.session() as s:
        s.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dfeed'"))
    with pytest.raises(SchemaMismatch, match="revision f00dfeed.*upgrade fhir-cm"):
        open_store(empty_url)


def test_downgrade_to_base_removes_every_table(empty_url: str) -> None:
    with open_store(empty_url) as store, store.engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(connection=conn), "base")
        assert set(inspect(conn).get_table_names()) <= {VERSION_TABLE}
