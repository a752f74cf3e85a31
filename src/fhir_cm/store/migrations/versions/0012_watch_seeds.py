"""The Encounter watch: the cases whose Encounter history was read in full, per server.

Revision ID: 0012_watch
Revises: 0011_base
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_watch"
down_revision: str | None = "0011_base"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watch_seeds",
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("seeded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_base", "case_id"),
    )


def downgrade() -> None:
    op.drop_table("watch_seeds")
