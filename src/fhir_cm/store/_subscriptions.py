"""Subscriptions fhir-cm holds on FHIR servers, and the tracking their notifications ask for.

A subscription is ours when we made it: the store keeps its server id, the patients its criteria
name, a *hash* of the shared secret the server sends back with every notification (never the secret
itself), its status as last read, and — for topic-based subscriptions, whose notifications are
numbered — the last event number seen, so a repeated notification is dropped and a gap noticed. A
notification does not track anything itself: it queues the tracking of the patients it concerns, and
the worker does it (``tracking_queue``), so an endpoint answers at once and nothing is lost if the
worker is down.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import BigInteger, Integer, String, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._dialect import normal_base
from ._tables import ID, URL, Base
from ._types import Json, UTCDateTime, utcnow

__all__ = [
    "HeldSubscription",
    "QueuedTracking",
    "forget_subscription",
    "get_subscription",
    "list_subscriptions",
    "mark_tracked",
    "pending_tracking",
    "put_subscription",
    "queue_tracking",
    "record_event_number",
    "secret_hash",
    "update_subscription",
]


class SubscriptionRow(Base):
    """One subscription of ours on one server."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    server_base: Mapped[str] = mapped_column(String(URL), index=True)
    server_id: Mapped[str | None] = mapped_column(String(ID))
    kind: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(URL))
    topic: Mapped[str | None] = mapped_column(String(URL))
    criteria: Mapped[str] = mapped_column(String(8000))
    patients: Mapped[list[str]] = mapped_column(Json)
    secret_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(1000))
    last_event: Mapped[int | None] = mapped_column(BigInteger)  # integer64, as the backport numbers events (0025)
    last_notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TrackingRow(Base):
    """A patient whose Encounters a notification (or a catch-up) asks to track."""

    __tablename__ = "tracking_queue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server_base: Mapped[str] = mapped_column(String(URL))
    patient_id: Mapped[str | None] = mapped_column(String(ID))
    resource: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)


class HeldSubscription(BaseModel):
    """A subscription of ours, as the store holds it."""

    model_config = ConfigDict(frozen=True)

    id: str
    server_base: str
    server_id: str | None
    kind: str
    endpoint: str
    topic: str | None = None
    criteria: str
    patients: list[str]
    secret_hash: str
    status: str
    error: str | None = None
    last_event: int | None = None
    last_notified_at: dt.datetime | None = None
    created_at: dt.datetime


class QueuedTracking(BaseModel):
    """Tracking to do: a patient (or a resource whose patient is still to be read), and why."""

    model_config = ConfigDict(frozen=True)

    id: int
    server_base: str
    patient_id: str | None
    resource: str | None
    reason: str
    received_at: dt.datetime


def secret_hash(secret: str) -> str:
    """What the store keeps of a shared secret: enough to check one presented, never to send it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _held(row: SubscriptionRow) -> HeldSubscription:
    return HeldSubscription.model_validate(row, from_attributes=True)


def put_subscription(session: Session, held: HeldSubscription) -> None:
    """Record a subscription made on a server."""
    session.add(SubscriptionRow(**{**held.model_dump(), "server_base": normal_base(held.server_base)}))


def update_subscription(session: Session, subscription_id: str, **values: Any) -> None:
    """Change what is held of a subscription (status, error, criteria, patients, last event …)."""
    session.execute(update(SubscriptionRow).where(SubscriptionRow.id == subscription_id).values(**values))


def record_event_number(
    session: Session, subscription_id: str, number: int, *, restarted_from: int | None = None
) -> None:
    """Hold ``number`` as the last event received, in one conditional statement: only forward.

    Two notifications handled at once each read the number held, then write their own; a plain
    write by the one holding the lower number, landing last, would move it back, and the next
    event would read as a gap (a needless catch-up of every patient). The one write that moves it
    back is a server numbering afresh (``restarted_from``: the number the delivery found held and
    judged a restart against), and only while that number is still the one held — another delivery
    of the restarted server may have started the numbering again, and then only forward counts.
    """
    held = func.coalesce(SubscriptionRow.last_event, 0)
    forward = or_(SubscriptionRow.last_event.is_(None), SubscriptionRow.last_event < number)
    when = or_(forward, held == restarted_from) if restarted_from is not None else forward
    session.execute(
        update(SubscriptionRow).where(SubscriptionRow.id == subscription_id, when).values(last_event=number)
    )


def forget_subscription(session: Session, subscription_id: str) -> None:
    """Drop a subscription (removed from its server)."""
    session.execute(delete(SubscriptionRow).where(SubscriptionRow.id == subscription_id))


def get_subscription(session: Session, subscription_id: str) -> HeldSubscription | None:
    """One subscription by our id."""
    row = session.get(SubscriptionRow, subscription_id)
    return _held(row) if row is not None else None


def list_subscriptions(session: Session, server_base: str | None = None) -> list[HeldSubscription]:
    """Our subscriptions (on one server), oldest first."""
    query = select(SubscriptionRow).order_by(SubscriptionRow.created_at, SubscriptionRow.id)
    if server_base is not None:
        query = query.where(SubscriptionRow.server_base == normal_base(server_base))
    return [_held(r) for r in session.scalars(query)]


def queue_tracking(
    session: Session,
    server_base: str,
    *,
    patients: Iterable[str] = (),
    resource: str | None = None,
    reason: str,
    now: dt.datetime | None = None,
) -> int:
    """Queue the tracking of these patients (or of the patient of ``resource``, ``Type/id``); returns rows queued."""
    at = now or utcnow()
    base = normal_base(server_base)
    rows = [
        {"server_base": base, "patient_id": p, "resource": None, "reason": reason, "received_at": at}
        for p in dict.fromkeys(patients)
    ]
    if resource is not None:
        rows.append(
            {"server_base": base, "patient_id": None, "resource": resource, "reason": reason, "received_at": at}
        )
    for row in rows:
        session.add(TrackingRow(**row))
    return len(rows)


def pending_tracking(session: Session, server_base: str, limit: int = 500) -> list[QueuedTracking]:
    """Tracking still to do on a server, oldest first."""
    query = (
        select(TrackingRow)
        .where(TrackingRow.server_base == normal_base(server_base), TrackingRow.done_at.is_(None))
        .order_by(TrackingRow.id)
        .limit(limit)
    )
    return [QueuedTracking.model_validate(r, from_attributes=True) for r in session.scalars(query)]


def mark_tracked(session: Session, ids: Iterable[int], *, now: dt.datetime | None = None) -> None:
    """The queued tracking done."""
    wanted = list(ids)
    if wanted:
        session.execute(update(TrackingRow).where(TrackingRow.id.in_(wanted)).values(done_at=now or utcnow()))
