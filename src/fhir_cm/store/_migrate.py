"""Schema migrations with Alembic, run from code: users never see an alembic.ini.

The migration scripts ship inside the package (``fhir_cm/store/migrations``). ``upgrade`` brings a
database to the newest revision under a lock, so several processes opening the same store at once
migrate it once; a database already at the newest revision costs one read.

For developers, a new migration after changing ``_tables.py``::

    from alembic import command
    from fhir_cm.store import alembic_config
    command.revision(alembic_config("sqlite:///dev.db"), autogenerate=True, message="what changed")
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, text

from ._engine import READ_ONLY
from ._errors import SchemaMismatch
from ._tables import Base
from ._types import UTCDateTime

__all__ = ["VERSION_TABLE", "alembic_config", "current_revision", "head_revision", "schema_drift", "upgrade"]

#: Alembic's bookkeeping table, named so that it cannot clash with another application's in a shared database.
VERSION_TABLE = "fhir_cm_alembic_version"

#: PostgreSQL advisory lock held while migrating ('fhircm' in ASCII).
_MIGRATION_LOCK = 0x66_68_69_72_63_6D


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations, on a URL or an open connection."""
    config = Config()
    config.set_main_option("script_location", "fhir_cm.store:migrations")
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _render_item(kind: str, obj: Any, _context: Any) -> str | Literal[False]:
    # Migrations spell out plain SQLAlchemy types, so they never break when a store type moves.
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def context_options() -> dict[str, Any]:
    """Options shared by env.py and the drift check, so both see the schema the same way."""
    return {
        "version_table": VERSION_TABLE,
        "compare_type": True,
        "target_metadata": Base.metadata,
        "render_item": _render_item,
    }


def head_revision() -> str:
    """The newest revision the packaged migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None if it has no fhir-cm schema yet."""
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _check_known(revision: str | None) -> None:
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        raise SchemaMismatch(
            f"the database schema is at revision {revision}, which this version of fhir-cm does not know "
            f"(its newest is {head_revision()}); upgrade fhir-cm"
        ) from None


def upgrade(engine: Engine) -> str:
    """Bring the database to the newest revision; returns the revision it is at afterwards."""
    head = head_revision()
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        current = current_revision(conn)
    _check_known(current)
    if current == head:
        return head
    with engine.connect() as conn, conn.begin():
        # One migrator at a time: on SQLite the transaction began IMMEDIATE (the write lock); on
        # PostgreSQL an advisory lock. The loser then finds the schema at head and does nothing.
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        _check_known(current_revision(conn))
        command.upgrade(alembic_config(connection=conn), "head")
    return head


def schema_drift(connection: Connection) -> list[Any]:
    """Differences between the tables in ``_tables.py`` and the database; empty when migrations are complete."""
    context = MigrationContext.configure(connection, opts=context_options())
    return list(compare_metadata(context, Base.metadata))
