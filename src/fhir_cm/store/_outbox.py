"""The outbox: cases waiting to be pushed, claimed by workers under a lease.

Rules that make several workers safe together (the claims and their leases: ``_outbox_leases``):

* **One open row per case** (a unique index over pending and in-flight rows). A change to a case
  that already waits just raises the row's revision: changes coalesce, and the pusher sends the
  case's latest state once. A change while the case is being pushed raises the in-flight row's
  revision; ``mark_pushed`` then puts the row back to pending instead of done, so the change is not lost.
  The same index keeps two workers from ever pushing one case at the same time.
* **An outcome needs the claim.** ``mark_pushed``/``mark_push_failed`` settle a row only while the
  claim that took it still holds it (``LeaseLost`` otherwise).

A row that **failed for good** stays failed (counted, listed, never purged) until a later push of
the same case succeeds: the pusher sends a case whole, so that push carried the change the failed
one could not, and ``mark_pushed`` settles the case's failed rows up to its revision (done, with their
``last_error`` kept). Nothing else clears them; the pull decides for itself whether one still
guards a local change (``fhir_cm.sync``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import cache
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    bindparam,
    case,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from ._dialect import insert
from ._errors import LeaseLost, NotFound
from ._holders import LeaseHolder
from ._tables import OPEN_OUTBOX, CaseRow, OutboxRow, OutboxStatus
from ._types import utcnow

__all__ = [
    "OutboxItem",
    "mark_pushed",
    "mark_pushed_many",
    "queue_push",
    "mark_push_failed",
    "list_outbox",
    "outbox_counts",
    "outbox_statuses",
    "purge_outbox",
]

_T = cast(Table, OutboxRow.__table__)
_C = _T.c
PENDING, IN_FLIGHT, DONE, FAILED = (s.value for s in OutboxStatus)
MAX_ERROR = 1000
_CHUNK = 500


class OutboxItem(BaseModel):
    """One queued push of a case; ``claim_token`` identifies the claim that holds it."""

    model_config = ConfigDict(frozen=True)

    id: int
    case_id: str
    revision: int
    status: OutboxStatus
    attempts: int
    last_error: str | None
    available_at: dt.datetime
    claimed_by: str | None
    claimed_at: dt.datetime | None
    lease_expires_at: dt.datetime | None
    claim_token: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    completed_at: dt.datetime | None
    holder_host: str | None = None
    holder_pid: int | None = None
    holder_process: str | None = None

    @property
    def holder(self) -> LeaseHolder | None:
        """The process that made the claim, when it said (``claim_outbox(holder=…)``)."""
        if self.holder_host is None or self.holder_pid is None:
            return None
        return LeaseHolder(host=self.holder_host, pid=self.holder_pid, process=self.holder_process)


def _items(rows: Any) -> list[OutboxItem]:
    return sorted((OutboxItem.model_validate(dict(r._mapping)) for r in rows), key=lambda i: i.id)


def queue_push(session: Session, case_id: str, revision: int | None = None, *, now: dt.datetime | None = None) -> int:
    """Queue a push of a case (at its current revision unless given); returns the outbox row id.

    ``save_case`` calls this itself; call it directly to push a case again without changing it
    (e.g. to a new server).
    """
    now = now or utcnow()
    if revision is None:
        query = select(CaseRow.revision).where(CaseRow.case_id == case_id).with_for_update()
        revision = session.execute(query).scalar_one_or_none()
        if revision is None:
            raise NotFound(f"no case {case_id} to push")
    stmt = _enqueue_statement(session.get_bind().dialect.name)
    return int(session.execute(stmt, {"case_id": case_id, "revision": revision, "now": now}).scalar_one())


@cache
def _enqueue_statement(dialect: str) -> Any:
    """The upsert behind ``queue_push``, built once per backend: building it (and its cache key) costs
    more than running it, and every saved case runs it."""
    now = bindparam("now")  # type: ignore[var-annotated]
    stmt = insert(dialect, _T).values(
        case_id=bindparam("case_id"),
        revision=bindparam("revision"),
        status=PENDING,
        attempts=0,
        available_at=now,
        created_at=now,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[_C.case_id],
        index_where=text(OPEN_OUTBOX),
        set_={
            "revision": case((stmt.excluded.revision > _C.revision, stmt.excluded.revision), else_=_C.revision),
            "updated_at": now,
        },
    )
    return stmt.returning(_C.id)


def _of_cases(session: Session, query: Any, case_ids: Iterable[str] | None) -> list[OutboxItem]:
    """The rows ``query`` selects, only of ``case_ids`` if given (in chunks: drivers cap the
    parameters of one statement), oldest first."""
    if case_ids is None:
        return _items(session.execute(query))
    wanted = list(dict.fromkeys(case_ids))
    found: list[OutboxItem] = []
    for n in range(0, len(wanted), _CHUNK):
        found += _items(session.execute(query.where(_C.case_id.in_(wanted[n : n + _CHUNK]))))
    return sorted(found, key=lambda i: i.id)


def _settle(session: Session, item: OutboxItem, values: dict[str, Any]) -> OutboxItem:
    """Apply the outcome of a claim, if the claim still holds the row."""
    stmt = (
        update(_T)
        .where(_C.id == item.id, _C.status == IN_FLIGHT, _C.claim_token == item.claim_token)
        .values(**values)
        .returning(*_C)
    )
    rows = _items(session.execute(stmt))
    if not rows:
        raise LeaseLost(f"outbox item {item.id} is no longer held by this claim (lease expired or settled)")
    return rows[0]


def _changed_since(item: OutboxItem, pushed_revision: int | None) -> ColumnElement[bool]:
    return _C.revision > max(item.revision, pushed_revision or 0)


def mark_pushed(
    session: Session, item: OutboxItem, *, pushed_revision: int | None = None, now: dt.datetime | None = None
) -> OutboxItem:
    """The push succeeded. Done, unless the case changed since: then it is pending again.

    ``pushed_revision`` is the revision the pusher actually read and sent (it reads the case after
    claiming, so it may be newer than ``item.revision``); giving it avoids one needless re-push.

    Earlier rows of the case that failed for good are settled too (done, their ``last_error`` kept):
    the pusher sends a case whole, so this push carried whatever change they failed to carry.
    """
    now = now or utcnow()
    again = _changed_since(item, pushed_revision)
    session.execute(
        update(_T)
        .where(_C.case_id == item.case_id, _C.status == FAILED, _C.revision <= max(item.revision, pushed_revision or 0))
        .values(status=DONE, completed_at=now, updated_at=now)
    )
    return _settle(
        session,
        item,
        {
            "status": case((again, PENDING), else_=DONE),
            "attempts": case((again, 0), else_=_C.attempts),
            "completed_at": case((again, None), else_=now),
            "last_error": None,
            "lease_expires_at": None,
            "claim_token": None,
            "available_at": now,
            "updated_at": now,
        },
    )


def mark_pushed_many(session: Session, items: Iterable[OutboxItem], *, now: dt.datetime | None = None) -> None:
    """``mark_pushed`` for several rows, in three statements whatever their number.

    A push settles its cases in groups (``fhir_cm.sync``): two statements per row were a twentieth
    of its CPU. The claims are checked first, under a row lock (PostgreSQL; SQLite's write
    transactions are exclusive already); if any no longer holds, ``LeaseLost`` is raised before
    anything is written, and the caller settles the rows one by one.
    """
    items = list(items)
    if not items:
        return
    now = now or utcnow()
    ids = [item.id for item in items]
    held: dict[int, str | None] = {}
    for n in range(0, len(ids), _CHUNK):
        query = select(_C.id, _C.claim_token).where(_C.id.in_(ids[n : n + _CHUNK]), _C.status == IN_FLIGHT)
        held.update((row.id, row.claim_token) for row in session.execute(query.with_for_update()))
    lost = [item.id for item in items if held.get(item.id) != item.claim_token]
    if lost:
        raise LeaseLost(f"outbox item {lost[0]} is no longer held by this claim (lease expired or settled)")
    session.execute(
        update(_T)
        .where(_C.case_id == bindparam("b_case"), _C.status == FAILED, _C.revision <= bindparam("b_revision"))
        .values(status=DONE, completed_at=now, updated_at=now),
        [{"b_case": item.case_id, "b_revision": item.revision} for item in items],
    )
    again = _C.revision > bindparam("b_revision")
    session.execute(
        update(_T)
        .where(_C.id == bindparam("b_id"), _C.claim_token == bindparam("b_token"))
        .values(
            status=case((again, PENDING), else_=DONE),
            attempts=case((again, 0), else_=_C.attempts),
            completed_at=case((again, None), else_=now),
            last_error=None,
            lease_expires_at=None,
            claim_token=None,
            available_at=now,
            updated_at=now,
        ),
        [{"b_id": item.id, "b_token": item.claim_token, "b_revision": item.revision} for item in items],
    )


def mark_push_failed(
    session: Session,
    item: OutboxItem,
    error: str,
    *,
    retry: bool = True,
    delay_seconds: float = 0.0,
    pushed_revision: int | None = None,
    now: dt.datetime | None = None,
) -> OutboxItem:
    """The push failed. With ``retry`` it is due again after ``delay_seconds``; without, it is failed for good.

    A permanent failure still goes back to pending if the case changed since the revision tried
    (``pushed_revision``, else the claimed one): the change may be what fixes it. ``error`` is stored for people to read: it must not contain PHI.
    """
    now = now or utcnow()
    again = _changed_since(item, pushed_revision)
    values: dict[str, Any] = {
        "last_error": error[:MAX_ERROR],
        "lease_expires_at": None,
        "claim_token": None,
        "available_at": now + dt.timedelta(seconds=delay_seconds),
        "updated_at": now,
    }
    if not retry:
        values |= {
            "status": case((again, PENDING), else_=FAILED),
            "attempts": case((again, 0), else_=_C.attempts),
            "completed_at": case((again, None), else_=now),
        }
    else:
        values["status"] = PENDING
    return _settle(session, item, values)


def list_outbox(
    session: Session,
    *,
    status: OutboxStatus | None = None,
    case_id: str | None = None,
    case_ids: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[OutboxItem]:
    """Outbox rows, oldest first, optionally only those in one status, of one case or of ``case_ids``."""
    query = select(*_C).order_by(_C.id).limit(limit)
    if status is not None:
        query = query.where(_C.status == status.value)
    if case_id is not None:
        query = query.where(_C.case_id == case_id)
    if case_ids is None:
        return _items(session.execute(query))
    return _of_cases(session, query.limit(None), case_ids)[:limit]


def outbox_counts(session: Session) -> dict[OutboxStatus, int]:
    """How many rows are in each status (every status present, zero if none), for health and metrics."""
    counts = dict.fromkeys(OutboxStatus, 0)
    for status, n in session.execute(select(_C.status, func.count()).group_by(_C.status)):
        counts[OutboxStatus(status)] = n
    return counts


def outbox_statuses(session: Session, case_ids: Iterable[str]) -> dict[str, set[OutboxStatus]]:
    """The statuses of the outbox rows of each of ``case_ids`` that has any, in one query."""
    wanted = list(dict.fromkeys(case_ids))
    out: dict[str, set[OutboxStatus]] = {}
    if wanted:
        query = select(_C.case_id, _C.status).where(_C.case_id.in_(wanted), _C.status != DONE).distinct()
        for case_id, status in session.execute(query):
            out.setdefault(case_id, set()).add(OutboxStatus(status))
    return out


def purge_outbox(session: Session, before: dt.datetime) -> int:
    """Delete done rows completed before ``before``; returns how many. Failed rows stay for people to see."""
    result = cast(CursorResult[Any], session.execute(delete(_T).where(_C.status == DONE, _C.completed_at < before)))
    return int(result.rowcount)
