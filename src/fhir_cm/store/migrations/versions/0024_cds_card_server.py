"""The FHIR server a CDS Hooks card's patient id is of (the call's ``fhirServer``), for its feedback.

Revision ID: 0024_cds_card_server
Revises: 0023_quarantine_dismissed
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_cds_card_server"
down_revision: str | None = "0023_quarantine_dismissed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cds_cards") as batch:
        batch.add_column(sa.Column("server_base", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cds_cards") as batch:
        batch.drop_column("server_base")
