"""Indexes for the API's busiest reads: the audit log newest first, and the store's change stamps.

``audit_log (at, id)``: the log is read newest first, walked backwards instead of sorted whole.
``cases (revision)`` and ``resources (updated_at)``: ``cases_version`` and ``store_version`` — read
on every caseload, outcomes and FHIR request to know whether anything changed — read small indexes
instead of every row.

Revision ID: 0018_read_indexes
Revises: 0017_cds_hooks
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0018_read_indexes"
down_revision: str | None = "0017_cds_hooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_log_at_id", "audit_log", ["at", "id"])
    op.create_index("ix_cases_revision", "cases", ["revision"])
    op.create_index("ix_resources_updated_at", "resources", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_resources_updated_at", table_name="resources")
    op.drop_index("ix_cases_revision", table_name="cases")
    op.drop_index("ix_audit_log_at_id", table_name="audit_log")
