"""The audit log: who read or changed which case, when, and how.

Rows name principals, cases and the entity touched by id only; never a name, note or finding.
A change's audit row is written in the same transaction as the change, so one never commits
without the other. There is no foreign key to the cases: the trail must outlive what it describes.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from typing_extensions import Unpack

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Dialect, Index, Integer, String, Table, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._engine import without_nul
from ._tables import ID, Base, CaseRow
from ._types import UTCDateTime, utcnow

__all__ = ["AuditEntry", "audit_rows", "list_audit", "record_audit", "write_audit_rows"]

MAX_DETAIL = 200


class AuditRow(Base):
    """One access to a case (or to a list of them, one row per case seen)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    principal: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[str | None] = mapped_column(String(ID))
    detail: Mapped[str | None] = mapped_column(String(MAX_DETAIL))
    request_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_audit_log_case_id_at", "case_id", "at"),
        Index("ix_audit_log_principal_at", "principal", "at"),
        # The log is read newest first: walked backwards, not sorted whole on every read.
        Index("ix_audit_log_at_id", "at", "id"),
    )


_AUDIT_TABLE: Table = AuditRow.__table__  # type: ignore[assignment]  # a mapped class's table is a Table


class AuditEntry(BaseModel):
    """An audit row: ``action`` is e.g. ``read``, ``create``, ``update``; ``detail`` names what, by id."""

    model_config = ConfigDict(frozen=True)

    id: int
    at: dt.datetime
    principal: str
    action: str
    case_id: str | None
    detail: str | None
    request_id: str | None


class AuditAsk(TypedDict):
    """What one audited action records: who, what, which cases (by id), and optionally a detail (ids
    only, no PHI), the request and the time (now by default)."""

    principal: str
    action: str
    case_ids: Iterable[str | None]
    detail: NotRequired[str | None]
    request_id: NotRequired[str | None]
    now: NotRequired[dt.datetime | None]


def record_audit(session: Session, **asked: Unpack[AuditAsk]) -> int:
    """Record one row per case touched; returns how many. ``detail`` must hold ids only, no PHI."""
    return write_audit_rows(session, audit_rows(**asked))


def audit_rows(
    *,
    principal: str,
    action: str,
    case_ids: Iterable[str | None],
    detail: str | None = None,
    request_id: str | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The rows :func:`record_audit` writes, one per case touched, to write later with others."""
    at = now or utcnow()
    return [
        {
            "at": at,
            "principal": principal,
            "action": action,
            "case_id": case_id,
            "detail": detail[:MAX_DETAIL] if detail else None,
            "request_id": request_id,
        }
        for case_id in dict.fromkeys(case_ids)
    ]


#: From this many rows on, PostgreSQL takes a group by ``COPY``: from two, a ``COPY`` costs both sides
#: less than an ``INSERT`` of the rows (psycopg sends an ``INSERT`` of several rows as one statement per
#: row); a single row costs about the same either way.
COPY_FROM = 2
_COPIED = ("at", "principal", "action", "case_id", "detail", "request_id")
_COPY = f"COPY audit_log ({', '.join(_COPIED)}) FROM STDIN"


def write_audit_rows(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows`` (made by :func:`audit_rows`) in one execution; returns how many.

    Into the table, not through the ORM's bulk insert: the rows need nothing from it, and it cost
    three times the CPU for a group of five rows (2.0 against 0.7 ms), on every audited request.
    A group of several rows on PostgreSQL goes by ``COPY``: a supervisor's caseload names every open case,
    and once any case changed, the next one wrote 10,000 rows, 150 ms of CPU as an ``INSERT`` against
    20–37 ms copied (a probe, three runs each); and a page of 20 cases listed, or a group of a few
    requests' rows, cost this process 2.1–2.3 ms and the database 1.3–1.4 ms as an ``INSERT``, against
    0.9 and 0.7 copied (``benchmarks/bench_audit.py``, three rounds of 300 transactions)."""
    if len(rows) >= COPY_FROM and session.get_bind().dialect.name == "postgresql":
        _copy(session, rows)
    elif rows:
        session.execute(insert(_AUDIT_TABLE), list(rows))
    return len(rows)


def _copy(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """``rows`` by ``COPY``, in the session's transaction, as an ``INSERT`` would store them: instants
    in UTC, no NUL in text (``_engine._without_nul``), the driver's errors as SQLAlchemy's.

    The rows go as COPY's text, written here: the rows of one audited request differ only in their
    case, so the rest of a line is made once per request, where the driver's ``write_row`` turned
    every field of every row into text again: a 10,000-row group cost this process 43–60 ms of CPU,
    23–27 ms so (a probe, twice each; the database's own part, 50–65 ms of the 76–92 it takes, is the same)."""
    import psycopg  # the PostgreSQL driver, installed wherever a PostgreSQL store is open

    dialect = session.get_bind().dialect
    connection = session.connection().connection.driver_connection
    assert connection is not None, "a session's connection is checked out"
    try:
        with connection.cursor() as cursor, cursor.copy(_COPY) as copy:
            lines = _copy_lines(rows, dialect)
            while chunk := "".join(itertools.islice(lines, _COPY_CHUNK)):
                copy.write(chunk)
    except psycopg.Error as exc:
        raise DBAPIError.instance(_COPY, None, exc, psycopg.Error, dialect=dialect) from exc


#: Lines handed to the driver at a time: a large group is not held twice over as one string.
_COPY_CHUNK = 2000
#: COPY's text format: a backslash, and the characters that end a field or a line, escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_lines(rows: Iterable[Mapping[str, Any]], dialect: Dialect) -> Iterator[str]:
    """Each row as a line of COPY's text, its fields in ``_COPIED``'s order."""
    at = UTCDateTime()
    made: dict[tuple[Any, ...], tuple[str, str]] = {}
    for row in rows:
        rest = (row["at"], row["principal"], row["action"], row.get("detail"), row.get("request_id"))
        around = made.get(rest)
        if around is None:
            instant = at.process_bind_param(rest[0], dialect)
            assert instant is not None, "an audit row has its instant"
            head = (_copy_field(instant.isoformat()), _copy_field(rest[1]), _copy_field(rest[2]))
            around = made[rest] = ("\t".join(head) + "\t", f"\t{_copy_field(rest[3])}\t{_copy_field(rest[4])}\n")
        yield f"{around[0]}{_copy_field(row.get('case_id'))}{around[1]}"


def _copy_field(value: str | None) -> str:
    return "\\N" if value is None else without_nul(value).translate(_COPY_ESCAPES)


def list_audit(
    session: Session,
    *,
    case_id: str | None = None,
    principal: str | None = None,
    since: dt.datetime | None = None,
    limit: int | None = 100,
    offset: int = 0,
    programme: str | None = None,
) -> list[AuditEntry]:
    """Audit rows, newest first, optionally of one case or one principal, and from a time on.

    ``programme``: only the rows of the stored cases now in that programme (the scope of a supervisor
    limited to it), chosen before the page is cut, so a page holds ``limit`` of them while more remain."""
    a = AuditRow
    query = select(*a.__table__.c).order_by(a.at.desc(), a.id.desc()).offset(offset).limit(limit)
    if programme is not None:
        query = query.join(CaseRow, CaseRow.case_id == a.case_id).where(CaseRow.programme == programme)
    if case_id is not None:
        query = query.where(a.case_id == case_id)
    if principal is not None:
        query = query.where(a.principal == principal)
    if since is not None:
        query = query.where(a.at >= since)
    return [AuditEntry.model_validate(dict(row._mapping)) for row in session.execute(query)]
