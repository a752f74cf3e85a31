"""An index on ``cds_cards.issued_at``: every card answered is kept for a month, and each new card
forgets the ones older than that, by this index rather than a scan of the table.

Revision ID: 0021_cds_cards_issued_at
Revises: 0020_case_documents
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021_cds_cards_issued_at"
down_revision: str | None = "0020_case_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_cds_cards_issued_at"), "cds_cards", ["issued_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_cds_cards_issued_at"), table_name="cds_cards")
