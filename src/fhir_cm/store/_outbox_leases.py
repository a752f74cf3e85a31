"""Claims of outbox rows by workers, under leases: who pushes which case, and for how long.

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

Commit right after ``claim_outbox`` and push outside that transaction: the claim is the row's
status, not a lock held open over the network. The rows themselves, their queueing and settling,
are ``_outbox``'s.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from ._dialect import is_postgresql
from ._holders import HolderState, LeaseHolder, holder_state
from ._outbox import _C, _CHUNK, _T, IN_FLIGHT, PENDING, OutboxItem, _items, _of_cases, _settle
from ._types import utcnow

__all__ = [
    "claim_outbox",
    "held_leases",
    "release_claim",
    "renew_lease",
    "renew_leases",
    "take_over_dead_leases",
]


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
