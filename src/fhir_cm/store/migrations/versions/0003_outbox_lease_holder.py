"""Outbox lease holders: host, pid and process token of the worker holding a claim.

With them a push on the same host takes over at once the rows of a worker that died (``kill -9``)
instead of waiting for the lease to expire (see ``fhir_cm.store._holders``). Nullable: rows claimed
before this revision, and claims made without a holder, simply wait for their lease as before.

Revision ID: 0003_holder
Revises: 0002_api
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_holder"
down_revision: str | None = "0002_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("holder_host", "holder_pid", "holder_process")


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) works in place on both SQLite and PostgreSQL: no
    # table rebuild, so the outbox's partial unique index is left alone.
    op.add_column("outbox", sa.Column("holder_host", sa.String(length=255), nullable=True))
    op.add_column("outbox", sa.Column("holder_pid", sa.Integer(), nullable=True))
    op.add_column("outbox", sa.Column("holder_process", sa.String(length=128), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops unindexed columns in place too.
    for name in reversed(COLUMNS):
        op.drop_column("outbox", name)
