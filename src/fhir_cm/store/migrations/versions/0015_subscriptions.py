"""Subscriptions of ours on FHIR servers, and the tracking their notifications queue.

Revision ID: 0015_subscriptions
Revises: 0014_placements
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_subscriptions"
down_revision: str | None = "0014_placements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("server_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("topic", sa.String(length=2048), nullable=True),
        sa.Column("criteria", sa.String(length=8000), nullable=False),
        sa.Column("patients", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=True),
        sa.Column("last_event", sa.Integer(), nullable=True),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_subscriptions_server_base", "subscriptions", ["server_base"])
    op.create_table(
        "tracking_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("resource", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tracking_queue_done_at", "tracking_queue", ["done_at"])


def downgrade() -> None:
    op.drop_index("ix_tracking_queue_done_at", table_name="tracking_queue")
    op.drop_table("tracking_queue")
    op.drop_index("ix_subscriptions_server_base", table_name="subscriptions")
    op.drop_table("subscriptions")
