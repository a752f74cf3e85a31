"""An index for reading a case's ledger entries on one server: ``sync_ledger (server_base, case_id)``.

With only ``case_id`` indexed, SQLite answered ``server_base = ? AND case_id IN (…)`` through the
primary key's ``server_base`` prefix — every entry of the server read for each case — so a pull's
merges and a push's preparation slowed as the ledger grew.

Revision ID: 0019_ledger_case_index
Revises: 0018_read_indexes
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0019_ledger_case_index"
down_revision: str | None = "0018_read_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sync_ledger_server_case", "sync_ledger", ["server_base", "case_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_ledger_server_case", table_name="sync_ledger")
