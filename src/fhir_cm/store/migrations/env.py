"""Alembic environment: migrate the connection ``open_store`` hands over, or a URL for developers."""

from __future__ import annotations

from alembic import context

from fhir_cm.store._engine import make_engine
from fhir_cm.store._migrate import context_options

config = context.config


def _run(connection: object) -> None:
    dialect = getattr(connection, "dialect", None)
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=getattr(dialect, "name", "") == "sqlite",
        **context_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **context_options())
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn, conn.begin():
            _run(conn)
    finally:
        engine.dispose()
