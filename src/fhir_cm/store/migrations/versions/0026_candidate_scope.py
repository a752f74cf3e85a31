"""Which ranking made each candidate row: the whole population's (``system``) or a Group's (``Group/<id>``).

Rows ranked before keep no scope (NULL): which run made them was not recorded.

Revision ID: 0026_candidate_scope
Revises: 0025_subscription_event_64
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_candidate_scope"
down_revision: str | None = "0025_subscription_event_64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.add_column(sa.Column("scope", sa.String(length=70), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("candidates") as batch:
        batch.drop_column("scope")
