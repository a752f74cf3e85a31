"""The tables, as typed SQLAlchemy models. Only the store's modules see these; callers get pydantic rows.

Resources and the sync ledger are two tables, not one: a resource belongs to one case and is kept
once, as it came in (for a lossless export), while the ledger holds what each *server* knows of it
(id, versionId, last copy). One resource can live on several servers, so the ledger is keyed by
(server base, resource type, key) and may hold many rows for one resource.

Keys include the resource type because FHIR scopes business identifiers by type (a conditional
create searches ``Goal?identifier=…``): a Goal and a CarePlan may carry the same identifier value.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ._types import Json, UTCDateTime

__all__ = [
    "Base",
    "CaseChangeRow",
    "CaseRow",
    "ConflictRow",
    "ConflictStatus",
    "FacadeCopyRow",
    "LedgerRow",
    "OutboxRow",
    "OutboxStatus",
    "QuarantineRow",
    "ResourceRow",
    "StoreChangeRow",
    "TransitionRow",
    "WatermarkRow",
]

# Lengths: FHIR ids are at most 64 characters; identifier values and URLs get more room.
ID = 64
KEY = 512
URL = 2048
HASH = 64


class OutboxStatus(StrEnum):
    """Where a queued push stands."""

    PENDING = "pending"
    IN_FLIGHT = "in-flight"
    DONE = "done"
    FAILED = "failed"


class ConflictStatus(StrEnum):
    """Whether a person still has to decide a conflict."""

    OPEN = "open"
    RESOLVED = "resolved"


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


#: The outbox rows that still have work to do; at most one per case (see ``_outbox``).
OPEN_OUTBOX = _in("status", [OutboxStatus.PENDING.value, OutboxStatus.IN_FLIGHT.value])
OPEN_CONFLICT = _in("status", [ConflictStatus.OPEN.value])


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names, so migrations name things the same everywhere."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class CaseRow(Base):
    """A case, whole, as the domain model's JSON; the columns beside it are only there to filter on."""

    __tablename__ = "cases"

    case_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(ID), index=True)
    case_manager_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    programme: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    # Indexed (migration 0018) for the version checks that ``store_changes`` has since replaced.
    revision: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    # The days of ``data`` its stored resources wrote as a year or a month (JSON pointer → the date as
    # written; ``_written``), kept with the case so a list (the caseload) says them reading no resource.
    dates_as_written: Mapped[dict[str, str] | None] = mapped_column(Json, nullable=True)


class StoreChangeRow(Base):
    """A counter per table readers keep views of (``cases``, ``resources``), raised by every transaction
    that writes to it, as it commits (``_stamps.note_change``): whether anything changed since a view
    was made is one row to read, not a count over every case and resource."""

    __tablename__ = "store_changes"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger)


class CaseChangeRow(Base):
    """When each case's stamp last moved, as a place in the order of commits: ``seq`` is the value the
    ``case_changes`` counter of ``store_changes`` took as the transaction that saved the case or stored
    a resource of it committed (``_stamps``). A reader that kept every case's stamp asks for the rows
    past the value it last read, not for every case's stamp again."""

    __tablename__ = "case_changes"

    case_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)


class ResourceRow(Base):
    """A FHIR resource of a case, exactly as it was received or imported."""

    __tablename__ = "resources"

    resource_type: Mapped[str] = mapped_column(String(ID), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), index=True)
    fhir_version: Mapped[str] = mapped_column(String(2))
    raw: Mapped[dict[str, Any]] = mapped_column(Json)
    content_hash: Mapped[str] = mapped_column(String(HASH))
    source: Mapped[str | None] = mapped_column(String(URL))
    # Indexed so that ``resources_saved_at`` (the newest save) is one index lookup.
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)

    __table_args__ = (CheckConstraint("fhir_version IN ('R4', 'R5')", name="fhir_version"),)


class FacadeCopyRow(Base):
    """What the FHIR façade served of a case in one FHIR version, kept so that the next start-up need not
    map the case again (``_facade_copies``): the stamp of the case it was made from, a fingerprint of
    what made it, and the façade's own encoding of the resources. Derived data: losing it costs time."""

    __tablename__ = "facade_copies"

    case_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    fhir_version: Mapped[str] = mapped_column(String(2), primary_key=True)
    made_with: Mapped[str] = mapped_column(String(HASH))
    revision: Mapped[int] = mapped_column(Integer)
    case_updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    resources_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resources: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class LedgerRow(Base):
    """What one server holds of one resource: its id there, versionId and last copy seen."""

    __tablename__ = "sync_ledger"

    server_base: Mapped[str] = mapped_column(String(URL), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(ID), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    server_id: Mapped[str | None] = mapped_column(String(ID))
    version_id: Mapped[str | None] = mapped_column(String(ID))
    content_hash: Mapped[str | None] = mapped_column(String(HASH))
    server_copy: Mapped[dict[str, Any] | None] = mapped_column(Json)
    last_updated: Mapped[str | None] = mapped_column(String(ID))
    synced_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    # (server_base, case_id): a case's entries on one server are read by case (push, pull merges);
    # with only ``case_id`` indexed, SQLite chose the primary key's ``server_base`` prefix and read
    # every entry of the server for each case.
    __table_args__ = (
        UniqueConstraint("server_base", "resource_type", "server_id"),
        Index("ix_sync_ledger_server_case", "server_base", "case_id"),
    )


class OutboxRow(Base):
    """A case that must be pushed, as of a revision; the lease columns say who is pushing it."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"))
    revision: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    available_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The process holding the claim (``_holders``): lets a push on the same host take a dead one's rows at once.
    holder_host: Mapped[str | None] = mapped_column(String(255))
    holder_pid: Mapped[int | None] = mapped_column(Integer)
    holder_process: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        CheckConstraint(_in("status", [s.value for s in OutboxStatus]), name="status"),
        # At most one open row per case: this is what coalesces changes and keeps two workers off one case.
        Index(
            "uq_outbox_open_case",
            "case_id",
            unique=True,
            sqlite_where=text(OPEN_OUTBOX),
            postgresql_where=text(OPEN_OUTBOX),
        ),
        Index("ix_outbox_status_available_at", "status", "available_at"),
    )


class TransitionRow(Base):
    """A move between care settings recorded for a case, one row per (case, from stay, to stay, date).

    Missing stays are stored as '' rather than NULL, because SQL unique constraints treat NULLs as
    all different, which would let the same move be recorded twice.
    """

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"))
    from_stay: Mapped[str] = mapped_column(String(ID))
    to_stay: Mapped[str] = mapped_column(String(ID))
    date: Mapped[dt.date] = mapped_column(Date)
    from_setting: Mapped[str] = mapped_column(String(32))
    to_setting: Mapped[str] = mapped_column(String(32))
    discharge_disposition: Mapped[str | None] = mapped_column(String(16))
    receiving_provider: Mapped[dict[str, Any] | None] = mapped_column(Json)
    source_encounter: Mapped[str | None] = mapped_column(String(ID))
    readmission: Mapped[bool]
    follow_up_due: Mapped[dt.date | None] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("case_id", "from_stay", "to_stay", "date"),)


class QuarantineRow(Base):
    """A resource that could not be parsed or mapped, kept as received for a person to look at."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(URL))
    resource_type: Mapped[str | None] = mapped_column(String(ID))
    server_id: Mapped[str | None] = mapped_column(String(ID))
    #: Which resource of ``source`` this is: ``Type/id``, or ``Type#sha256:…`` of the text when it has
    #: no id. One entry per resource: a pull reading it again refreshes it (``_quarantine``).
    entry_key: Mapped[str] = mapped_column(String(KEY))
    #: ``meta.versionId``, or ``sha256:…`` of the text when the server keeps no versions.
    version: Mapped[str] = mapped_column(String(KEY))
    reason: Mapped[str] = mapped_column(String(1000))
    raw: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: When a person set the entry aside as dealt with, and who (reads of the same version keep it so).
    dismissed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dismissed_by: Mapped[str | None] = mapped_column(String(ID))

    __table_args__ = (
        Index("ix_quarantine_source_resource_type", "source", "resource_type"),
        Index("uq_quarantine_source_entry_key", "source", "entry_key", unique=True),
    )


class WatermarkRow(Base):
    """How far an incremental pull of one resource type from one server has got."""

    __tablename__ = "watermarks"

    server_base: Mapped[str] = mapped_column(String(URL), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(ID), primary_key=True)
    last_updated: Mapped[str] = mapped_column(String(ID))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ConflictRow(Base):
    """A resource both sides changed where their changes clash, waiting for a person."""

    __tablename__ = "conflicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"))
    resource_type: Mapped[str] = mapped_column(String(ID))
    resource_key: Mapped[str] = mapped_column(String(KEY))
    local: Mapped[dict[str, Any] | None] = mapped_column(Json)
    server: Mapped[dict[str, Any] | None] = mapped_column(Json)
    base: Mapped[dict[str, Any] | None] = mapped_column(Json)
    fields: Mapped[list[str]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(_in("status", [s.value for s in ConflictStatus]), name="status"),
        # One open conflict per resource of a case; a later clash updates it instead of piling up.
        Index(
            "uq_conflicts_open_resource",
            "case_id",
            "resource_type",
            "resource_key",
            unique=True,
            sqlite_where=text(OPEN_CONFLICT),
            postgresql_where=text(OPEN_CONFLICT),
        ),
        Index("ix_conflicts_status_case_id", "status", "case_id"),
    )
