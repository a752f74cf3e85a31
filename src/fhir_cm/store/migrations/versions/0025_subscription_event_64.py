"""A subscription's last event number in 64 bits: the backport's event numbers are integer64.

Revision ID: 0025_subscription_event_64
Revises: 0024_cds_card_server
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_subscription_event_64"
down_revision: str | None = "0024_cds_card_server"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.alter_column("last_event", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.alter_column("last_event", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=True)
