"""Initial schema: cases, resources, sync ledger, outbox, transitions, quarantine, watermarks, conflicts.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_OUTBOX = sa.text("status IN ('pending', 'in-flight')")
OPEN_CONFLICT = sa.text("status IN ('open')")


def _instant(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("case_manager_id", sa.String(length=64), nullable=True),
        sa.Column("programme", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        _instant("created_at"),
        _instant("updated_at"),
        sa.Column("data", sa.JSON(none_as_null=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_cases")),
    )
    for column in ("case_manager_id", "patient_id", "programme", "status"):
        op.create_index(op.f(f"ix_cases_{column}"), "cases", [column])

    op.create_table(
        "resources",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("fhir_version", sa.String(length=2), nullable=False),
        sa.Column("raw", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=2048), nullable=True),
        _instant("updated_at"),
        sa.CheckConstraint("fhir_version IN ('R4', 'R5')", name=op.f("ck_resources_fhir_version")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_resources_case_id_cases")),
        sa.PrimaryKeyConstraint("resource_type", "key", name=op.f("pk_resources")),
    )
    op.create_index(op.f("ix_resources_case_id"), "resources", ["case_id"])

    op.create_table(
        "sync_ledger",
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("server_id", sa.String(length=64), nullable=True),
        sa.Column("version_id", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("server_copy", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("last_updated", sa.String(length=64), nullable=True),
        _instant("synced_at"),
        sa.PrimaryKeyConstraint("server_base", "resource_type", "key", name=op.f("pk_sync_ledger")),
        sa.UniqueConstraint(
            "server_base",
            "resource_type",
            "server_id",
            name=op.f("uq_sync_ledger_server_base_resource_type_server_id"),
        ),
    )
    op.create_index(op.f("ix_sync_ledger_case_id"), "sync_ledger", ["case_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        _instant("available_at"),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        _instant("claimed_at", nullable=True),
        _instant("lease_expires_at", nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        _instant("created_at"),
        _instant("updated_at"),
        _instant("completed_at", nullable=True),
        sa.CheckConstraint("status IN ('pending', 'in-flight', 'done', 'failed')", name=op.f("ck_outbox_status")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_outbox_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_status_available_at", "outbox", ["status", "available_at"])
    op.create_index(
        "uq_outbox_open_case",
        "outbox",
        ["case_id"],
        unique=True,
        sqlite_where=OPEN_OUTBOX,
        postgresql_where=OPEN_OUTBOX,
    )

    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("from_stay", sa.String(length=64), nullable=False),
        sa.Column("to_stay", sa.String(length=64), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("from_setting", sa.String(length=32), nullable=False),
        sa.Column("to_setting", sa.String(length=32), nullable=False),
        sa.Column("discharge_disposition", sa.String(length=16), nullable=True),
        sa.Column("receiving_provider", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("source_encounter", sa.String(length=64), nullable=True),
        sa.Column("readmission", sa.Boolean(), nullable=False),
        sa.Column("follow_up_due", sa.Date(), nullable=True),
        _instant("recorded_at"),
        _instant("updated_at"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_transitions_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
        sa.UniqueConstraint(
            "case_id", "from_stay", "to_stay", "date", name=op.f("uq_transitions_case_id_from_stay_to_stay_date")
        ),
    )

    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=2048), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=True),
        sa.Column("server_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        _instant("received_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
    )
    op.create_index(op.f("ix_quarantine_received_at"), "quarantine", ["received_at"])
    op.create_index("ix_quarantine_source_resource_type", "quarantine", ["source", "resource_type"])

    op.create_table(
        "watermarks",
        sa.Column("server_base", sa.String(length=2048), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("last_updated", sa.String(length=64), nullable=False),
        _instant("updated_at"),
        sa.PrimaryKeyConstraint("server_base", "resource_type", name=op.f("pk_watermarks")),
    )

    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_key", sa.String(length=512), nullable=False),
        sa.Column("local", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("server", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("fields", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=True),
        sa.Column("resolved_by", sa.String(length=255), nullable=True),
        _instant("created_at"),
        _instant("resolved_at", nullable=True),
        sa.CheckConstraint("status IN ('open', 'resolved')", name=op.f("ck_conflicts_status")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name=op.f("fk_conflicts_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    op.create_index("ix_conflicts_status_case_id", "conflicts", ["status", "case_id"])
    op.create_index(
        "uq_conflicts_open_resource",
        "conflicts",
        ["case_id", "resource_type", "resource_key"],
        unique=True,
        sqlite_where=OPEN_CONFLICT,
        postgresql_where=OPEN_CONFLICT,
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; children before the cases they point at.
    for table in (
        "conflicts",
        "watermarks",
        "quarantine",
        "transitions",
        "outbox",
        "sync_ledger",
        "resources",
        "cases",
    ):
        op.drop_table(table)
