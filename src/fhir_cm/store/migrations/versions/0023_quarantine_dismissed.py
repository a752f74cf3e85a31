"""A quarantine entry a person dismissed: when and by whom (lists and counts leave it out).

Revision ID: 0023_quarantine_dismissed
Revises: 0022_quarantine_once
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_quarantine_dismissed"
down_revision: str | None = "0022_quarantine_once"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("dismissed_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("dismissed_by")
        batch.drop_column("dismissed_at")
