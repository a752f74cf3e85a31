"""A counter per table that readers keep views of: "has anything changed" becomes one row to read.

The caseload, outcomes, worklist and FHIR façade caches asked on every request whether a case or a
stored resource had changed by counting and summing over every case and every resource: 1.6 ms of the
database's time for 10,000 cases, 21 ms for 370,000 resources, on each request.

Revision ID: 0030_store_changes
Revises: 0029_screening_group_members
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030_store_changes"
down_revision: str | None = "0029_screening_group_members"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "store_changes",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_changes")),
    )
    op.bulk_insert(table, [{"name": "cases", "counter": 0}, {"name": "resources", "counter": 0}])


def downgrade() -> None:
    op.drop_table("store_changes")
