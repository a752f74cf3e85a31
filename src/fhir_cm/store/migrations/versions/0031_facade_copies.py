"""What the FHIR façade served of each case, kept between starts of the API.

A worker mapped every case to FHIR at start-up to index the façade: on 10,000 cases, most of the
tens of seconds before it was ready. Kept, a case is mapped again only when it changed since.

Revision ID: 0031_facade_copies
Revises: 0030_store_changes
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031_facade_copies"
down_revision: str | None = "0030_store_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "facade_copies",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("fhir_version", sa.String(length=2), nullable=False),
        sa.Column("made_with", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("case_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resources_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resources", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "fhir_version", name=op.f("pk_facade_copies")),
    )


def downgrade() -> None:
    op.drop_table("facade_copies")
