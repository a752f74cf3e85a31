"""One quarantine entry per resource: ``entry_key`` (``Type/id``, or ``Type#sha256:…`` of the text
when it has no id), unique per source, with the ``version`` set aside and ``last_seen_at``.

Before, every pull reading a bad resource again (the overlap, a re-pull, transitions) added a row.
The upgrade collapses those: per resource, the row received last stays (the newest version), its
``received_at`` the earliest of the rows of that same version, ``last_seen_at`` the latest of all.
Keys and versions are worked out here as the store worked them out at this revision (a copy, so
that a later change to the store cannot change what this migration does).

Revision ID: 0022_quarantine_once
Revises: 0021_cds_cards_issued_at
Create Date: 2026-12-05
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_quarantine_once"
down_revision: str | None = "0021_cds_cards_issued_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rows read per batch while working out keys (the table may have grown large: that is the point).
BATCH = 1000

_SAME_ENTRY = "q2.source = quarantine.source AND q2.entry_key = quarantine.entry_key"


def _key_and_version(resource_type: str | None, server_id: str | None, raw: str) -> tuple[str, str]:
    digest = "sha256:" + hashlib.sha256(raw.encode("utf-8", errors="replace")).hexdigest()
    version = None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = None
    if isinstance(parsed, dict) and isinstance(meta := parsed.get("meta"), dict):
        value = meta.get("versionId")
        version = value[:64] if isinstance(value, str) and value else None
    key = f"{resource_type or ''}/{server_id}" if server_id else f"{resource_type or ''}#{digest}"
    return key, version or digest


def _collapse(conn: sa.Connection) -> None:
    """Keep one row per resource. Each statement reads only values it does not change (or sets them
    to the value it reads), so it gives the same result however the database orders its work."""
    statements = [
        # When any pull last read the resource.
        f"UPDATE quarantine SET last_seen_at = (SELECT max(q2.received_at) FROM quarantine q2 WHERE {_SAME_ENTRY})",
        # The row received last (on a tie, the later id) holds the version kept: drop the other versions.
        "DELETE FROM quarantine WHERE EXISTS (SELECT 1 FROM quarantine kept"
        " WHERE kept.source = quarantine.source AND kept.entry_key = quarantine.entry_key"
        " AND kept.version <> quarantine.version AND NOT EXISTS (SELECT 1 FROM quarantine q2"
        " WHERE q2.source = kept.source AND q2.entry_key = kept.entry_key"
        " AND (q2.received_at > kept.received_at OR (q2.received_at = kept.received_at AND q2.id > kept.id))))",
        # What is left of a resource is one version: set aside first at the earliest of its rows...
        f"UPDATE quarantine SET received_at = (SELECT min(q2.received_at) FROM quarantine q2 WHERE {_SAME_ENTRY})",
        # ... and one of them stays (the same text; the reason of the last).
        f"DELETE FROM quarantine WHERE EXISTS (SELECT 1 FROM quarantine q2 WHERE {_SAME_ENTRY} AND q2.id > quarantine.id)",
    ]
    for statement in statements:
        conn.execute(sa.text(statement))


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("entry_key", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("version", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    table = sa.table(
        "quarantine",
        sa.column("id", sa.Integer),
        sa.column("resource_type", sa.String),
        sa.column("server_id", sa.String),
        sa.column("raw", sa.Text),
        sa.column("entry_key", sa.String),
        sa.column("version", sa.String),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(table.c.id, table.c.resource_type, table.c.server_id, table.c.raw)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        values = []
        for row in rows:
            key, version = _key_and_version(row.resource_type, row.server_id, row.raw)
            values.append({"row_id": row.id, "key": key, "version": version})
        conn.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(entry_key=sa.bindparam("key"), version=sa.bindparam("version")),
            values,
        )
        last = rows[-1].id
    _collapse(conn)
    with op.batch_alter_table("quarantine") as batch:
        batch.alter_column("entry_key", existing_type=sa.String(length=512), nullable=False)
        batch.alter_column("version", existing_type=sa.String(length=512), nullable=False)
        batch.alter_column("last_seen_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.create_index("uq_quarantine_source_entry_key", ["source", "entry_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_index("uq_quarantine_source_entry_key")
        batch.drop_column("last_seen_at")
        batch.drop_column("version")
        batch.drop_column("entry_key")
