"""The case document last imported for each case, which the next import of one merges against.

Revision ID: 0020_case_documents
Revises: 0019_ledger_case_index
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_case_documents"
down_revision: str | None = "0019_ledger_case_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_documents",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_case_documents_case_id_cases")),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_documents")),
    )


def downgrade() -> None:
    op.drop_table("case_documents")
