"""The outbox: cases waiting to be pushed, claimed by workers under a lease.

Rules that make several workers safe together:

* **One open row per case** (a unique index over pending and in-flight rows). A change to a case
  that already waits just raises the row's revision: changes coalesce, and the pusher sends the
  case's latest state once. A change while the case is being pushed raises the in-flight row's
  revision; ``mark_pushed`` then puts the row back to pending instead of done, so the change is not lost.
  The same index keeps two workers from ever pushing one case at the same time.
* **Claims are atomic.** PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` inside the claiming UPDATE,
  so concurrent claimers pass each other's rows by. SQLite: one UPDATE in an immediate transaction.
* **Leases expire.** A claim holds a row until ``lease_expires_at``; after that any worker may claim
  it again (a dead worker's rows return to the others). ``mark_pushed``/``mark_push_failed`` check the claim token,
  so a worker that outlived its lease cannot overwrite the new holder's outcome.
* **Leases are renewed** (``renew_leases``) by a worker still working on its rows, so a slow server
  never lets a second worker take a case that is still being pushed.
* **Leases name their holder** (host, pid, process token: ``_holders``). A claimer on the same host
  that can see the holder is dead takes its rows over at once (``take_over_dead_leases``) rather
  than waiting out the lease; a holder it cannot judge keeps its rows until the lease ends.

A row that **failed for good** stays failed (counted, listed, never purged) until a later push of
the same case succeeds: the pusher sends a case whole, so that push carried the change the failed
one could not, and ``mark_pushed`` settles the case's failed rows up to its revision (done, with their
``last_error`` kept). Nothing else clears them; the pull decides for itself whether one still
guards a local change (``fhir_cm.sync``).

Commit right after ``claim_outbox`` and push outside that transaction: the claim is the row's
status, not a lock held open over the network.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from ._dialect import insert, is_postgresql
from ._errors import LeaseLost, NotFound
from ._holders import HolderState, LeaseHolder, holder_state
from ._tables import OPEN_OUTBOX, CaseRow, OutboxRow, OutboxStatus
from ._types import utcnow

__all__ = [
    "OutboxItem",
    "claim_outbox",
    "mark_pushed",
    "mark_pushed_many",
    "queue_push",
    "mark_push_failed",
    "held_leases",
    "list_outbox",
    "outbox_counts",
    "outbox_statuses",
    "purge_outbox",
    "release_claim",
    "renew_lease",
    "renew_leases",
    "take_over_dead_leases",
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


def _claimable(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        and_(_C.status == PENDING, _C.available_at <= now),
        and_(_C.status == IN_FLIGHT, _C.lease_expires_at < now),
    )


def claim_outbox(
    session: Session,
    worker_id: str,
    limit: int = 10,
    lease_seconds: float = 60.0,
    *,
    holder: LeaseHolder | None = None,
    now: dt.datetime | None = None,
) -> list[OutboxItem]:
    """Claim up to ``limit`` rows that are due (or whose lease expired), oldest first, for ``worker_id``.

    ``holder`` (normally ``LeaseHolder.current()``) is recorded with the claim so that, should this
    process die, a claimer on the same host can see it and take the rows over before the lease ends.
    """
    now = now or utcnow()
    pick = select(_C.id).where(_claimable(now)).order_by(_C.available_at, _C.id).limit(limit)
    if is_postgresql(session):
        # Lock first, then update exactly those rows. (Inside an UPDATE's IN (…) PostgreSQL may
        # run the LIMITed subquery more than once and claim more rows than asked for.)
        ids = list(session.execute(pick.with_for_update(skip_locked=True)).scalars())
        if not ids:
            return []
        chosen: Any = _C.id.in_(ids)
    else:
        chosen = _C.id.in_(pick.scalar_subquery())  # one UPDATE statement: atomic on its own
    stmt = (
        update(_T)
        .where(chosen, _claimable(now))
        .values(
            status=IN_FLIGHT,
            attempts=_C.attempts + 1,
            claimed_by=worker_id,
            claimed_at=now,
            lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
            claim_token=uuid.uuid4().hex,
            updated_at=now,
            holder_host=holder.host if holder else None,
            holder_pid=holder.pid if holder else None,
            holder_process=holder.process if holder else None,
        )
        .returning(*_C)
    )
    return _items(session.execute(stmt))


def held_leases(
    session: Session, *, case_ids: Iterable[str] | None = None, now: dt.datetime | None = None
) -> list[OutboxItem]:
    """Rows in flight whose lease still runs (optionally only of ``case_ids``): what others are working on.

    A push reports these (who holds them, until when) and may wait for them; an expired lease is
    not listed — any claimer may take that row.
    """
    now = now or utcnow()
    query = select(*_C).where(_C.status == IN_FLIGHT, _C.lease_expires_at >= now).order_by(_C.id)
    return _of_cases(session, query, case_ids)


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


def take_over_dead_leases(
    session: Session,
    me: LeaseHolder,
    *,
    judge: Callable[[LeaseHolder, LeaseHolder], HolderState] = holder_state,
    now: dt.datetime | None = None,
) -> list[OutboxItem]:
    """Put back to pending, at once, the rows held by processes of ``me``'s host that are dead.

    Without this a push re-run right after a ``kill -9`` would find the dead process's rows still
    leased and leave them out. Only holders ``judge`` calls dead lose their rows (never one it
    cannot see, e.g. on another host); the attempt they made still counts. Each row is revoked only
    if its claim is unchanged, so two claimers taking over together revoke it once, and a live
    claimer that has meanwhile re-claimed it keeps it. Returns the rows as they were (who held them).
    """
    now = now or utcnow()
    query = select(*_C).where(_C.status == IN_FLIGHT, _C.lease_expires_at >= now, _C.holder_host == me.host)
    held = _items(session.execute(query))
    verdicts: dict[LeaseHolder, HolderState] = {}
    dead = []
    for item in held:
        holder = item.holder
        if holder is None:
            continue
        if holder not in verdicts:
            verdicts[holder] = judge(holder, me)
        if verdicts[holder] is HolderState.DEAD:
            dead.append(item)
    if not dead:
        return []
    tokens = [i.claim_token for i in dead]
    revoked: set[int] = set()
    for n in range(0, len(tokens), _CHUNK):
        stmt = (
            update(_T)
            .where(_C.status == IN_FLIGHT, _C.claim_token.in_(tokens[n : n + _CHUNK]))
            .values(status=PENDING, lease_expires_at=None, claim_token=None, updated_at=now)
            .returning(_C.id)
        )
        revoked.update(session.execute(stmt).scalars())
    return [i for i in dead if i.id in revoked]


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


def release_claim(session: Session, item: OutboxItem, *, now: dt.datetime | None = None) -> OutboxItem:
    """Give a claim back untried (a worker shutting down): pending again, the attempt not counted."""
    now = now or utcnow()
    return _settle(
        session,
        item,
        {
            "status": PENDING,
            "attempts": _C.attempts - 1,
            "lease_expires_at": None,
            "claim_token": None,
            "updated_at": now,
        },
    )


def renew_lease(
    session: Session, item: OutboxItem, lease_seconds: float = 60.0, *, now: dt.datetime | None = None
) -> OutboxItem:
    """Extend a claim's lease (a long push still making progress); ``LeaseLost`` if another worker took it."""
    now = now or utcnow()
    return _settle(session, item, {"lease_expires_at": now + dt.timedelta(seconds=lease_seconds), "updated_at": now})


def renew_leases(
    session: Session, items: Iterable[OutboxItem], lease_seconds: float = 60.0, *, now: dt.datetime | None = None
) -> list[OutboxItem]:
    """Extend the leases of many claims in one statement; returns those still held (the rest were lost).

    A worker renews every claim it has not settled yet — including rows of its batch still waiting
    for a free slot — so that a slow server never lets another worker take a row that is being
    pushed. A claim is renewed only while its token still holds the row, even after its lease ran
    out: nobody took it, so it is still this worker's. Nothing is raised for lost claims: the
    caller learns which they are (and their settling will raise ``LeaseLost``).
    """
    now = now or utcnow()
    tokens = [i.claim_token for i in items if i.claim_token]
    renewed: list[OutboxItem] = []
    for n in range(0, len(tokens), _CHUNK):
        stmt = (
            update(_T)
            .where(_C.status == IN_FLIGHT, _C.claim_token.in_(tokens[n : n + _CHUNK]))
            .values(lease_expires_at=now + dt.timedelta(seconds=lease_seconds), updated_at=now)
            .returning(*_C)
        )
        renewed += _items(session.execute(stmt))
    return sorted(renewed, key=lambda i: i.id)


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
