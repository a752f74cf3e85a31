"""The Patients each screened Group listed at its last run: the next run reads those added since whole.

Revision ID: 0029_screening_group_members
Revises: 0028_outside_parties
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_screening_group_members"
down_revision: str | None = "0028_outside_parties"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "screening_group_members",
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("group_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("server_base", "group_id", "patient_id", name=op.f("pk_screening_group_members")),
    )


def downgrade() -> None:
    op.drop_table("screening_group_members")
