"""Sync health for the people who run fhir-cm: per server, what waits, what failed and why, how far pulls got.

Counts and reasons only: no case data beyond case ids (a failed row's reason is the server's own
words, which name resources, not people).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from fhir_cm.config import Settings
from fhir_cm.store import (
    OutboxStatus,
    Store,
    Watermark,
    list_conflicts,
    list_outbox,
    count_quarantine,
    list_subscriptions,
    list_watermarks,
    outbox_counts,
)

from .._access import sees_stored
from .._deps import Supervisor, Today, get_settings, get_store
from .._routing import api_router

__all__ = ["FailedPush", "ServerHealth", "SubscriptionHealth", "SyncHealth", "router"]

router = api_router(prefix="/sync", tags=["sync"])


class FailedPush(BaseModel):
    """A case whose push failed for good, with the server's reason."""

    case_id: str
    attempts: int
    reason: str | None
    failed_at: dt.datetime


class ServerHealth(BaseModel):
    """One FHIR server as sync sees it: how far each resource type's pulls got, and when."""

    server_base: str
    configured: bool
    last_pull: dt.datetime | None
    watermarks: list[Watermark]


class SubscriptionHealth(BaseModel):
    """A subscription of ours as last seen: its status on the server, how many patients, the last notification."""

    id: str
    server_base: str
    kind: str
    status: str
    error: str | None
    patients: int
    last_notified_at: dt.datetime | None


class SyncHealth(BaseModel):
    """The outbox (one queue: the configured server's), its failures, quarantine and conflicts, and every
    server pulls have reached."""

    fhir_base: str | None
    outbox: dict[OutboxStatus, int]
    failed: list[FailedPush]
    failed_total: int = Field(
        description="Failed pushes this key may be named (`failed` is the newest of them): the outbox's "
        "`failed` count spans every programme."
    )
    quarantined: int
    open_conflicts: int
    servers: list[ServerHealth]
    subscriptions: list[SubscriptionHealth]


@router.get("/health", response_model=SyncHealth, summary="Sync health per server")
def sync_health(
    principal: Supervisor,
    store: Annotated[Store, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
    today: Today,
    failed_limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many failed pushes, newest first.")
    ] = 50,
) -> SyncHealth:
    """What a supervisor or integration engineer checks first: pending and in-flight pushes, the failed
    ones with the server's reason, quarantined resources, open conflicts, per server the watermark of
    each resource type and when a pull last moved it, and our subscriptions with their status. A
    supervisor limited to one programme is named the failed pushes of that programme's cases only."""
    with store.session(read_only=True) as session:
        counts = outbox_counts(session)
        failed = list_outbox(session, status=OutboxStatus.FAILED)
        quarantined = count_quarantine(session)
        conflicts = len(list_conflicts(session))
        marks = list_watermarks(session)
        held = list_subscriptions(session)
        if principal.programme is not None:  # another programme's case, and the server's reason about it
            seen = {i.case_id: sees_stored(session, principal, i.case_id, today) for i in failed}
            failed = [i for i in failed if seen[i.case_id]]
    newest = sorted(failed, key=lambda i: i.updated_at, reverse=True)[:failed_limit]
    configured = settings.fhir_base.rstrip("/") if settings.fhir_base else None
    bases = sorted({m.server_base for m in marks} | ({configured} if configured else set()))
    servers = []
    for base in bases:
        own = [m for m in marks if m.server_base == base]
        servers.append(
            ServerHealth(
                server_base=base,
                configured=base == configured,
                last_pull=max((m.updated_at for m in own), default=None),
                watermarks=own,
            )
        )
    return SyncHealth(
        fhir_base=configured,
        outbox=counts,
        failed=[
            FailedPush(case_id=i.case_id, attempts=i.attempts, reason=i.last_error, failed_at=i.updated_at)
            for i in newest
        ],
        failed_total=len(failed),
        quarantined=quarantined,
        open_conflicts=conflicts,
        servers=servers,
        subscriptions=[
            SubscriptionHealth(
                id=h.id,
                server_base=h.server_base,
                kind=h.kind,
                status=h.status,
                error=h.error,
                patients=len(h.patients),
                last_notified_at=h.last_notified_at,
            )
            for h in held
        ],
    )
