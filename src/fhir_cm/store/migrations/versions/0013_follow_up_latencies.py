"""Discharge → follow-up on the server: when fhir-cm learned of the discharge, when the server held the follow-up.

Revision ID: 0013_follow_ups
Revises: 0012_watch
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_follow_ups"
down_revision: str | None = "0012_watch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "follow_up_latencies",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("on_server_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "referral_id"),
    )


def downgrade() -> None:
    op.drop_table("follow_up_latencies")
