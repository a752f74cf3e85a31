"""Placement offers: a case's post-discharge placement asked of several facilities (COW), per server.

Revision ID: 0014_placements
Revises: 0013_follow_ups
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_placements"
down_revision: str | None = "0013_follow_ups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("setting", sa.String(length=64), nullable=False),
        sa.Column("service", sa.String(length=1000), nullable=False),
        sa.Column("service_request_id", sa.String(length=64), nullable=False),
        sa.Column("candidates", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("chosen", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_placements_case_id", "placements", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_placements_case_id", table_name="placements")
    op.drop_table("placements")
