"""Per-server transaction limits learnt from refusals (Medplum's 8 entries, HAPI's configured size).

Revision ID: 0004_limits
Revises: 0003_holder
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_limits"
down_revision: str | None = "0003_holder"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_limits",
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("max_transaction_entries", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("learnt_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_base", name=op.f("pk_server_limits")),
    )


def downgrade() -> None:
    op.drop_table("server_limits")
