"""Population screening: one fact per screened resource, and the candidates of the last ranking, per server.

Revision ID: 0016_screening
Revises: 0015_subscriptions
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_screening"
down_revision: str | None = "0015_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "screening_facts",
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start", sa.Date(), nullable=True),
        sa.Column("end", sa.Date(), nullable=True),
        sa.Column("codes", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("flag", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_base", "resource_type", "resource_id"),
    )
    op.create_index("ix_screening_facts_server_patient", "screening_facts", ["server_base", "patient_id"])
    op.create_table(
        "candidates",
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("assessed_on", sa.Date(), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("server_base", "patient_id"),
    )
    op.create_index("ix_candidates_server_score", "candidates", ["server_base", "score"])


def downgrade() -> None:
    op.drop_index("ix_candidates_server_score", table_name="candidates")
    op.drop_table("candidates")
    op.drop_index("ix_screening_facts_server_patient", table_name="screening_facts")
    op.drop_table("screening_facts")
