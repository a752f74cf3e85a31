"""Subscriptions on a FHIR server to the Encounters of the patients of open cases.

So the case manager hears of an admission or a discharge within seconds rather than at the next
poll, fhir-cm asks the server to notify its API (``/notifications/<id>``) of Encounter changes:

* **R4 criteria subscriptions** (rest-hook) — what HAPI, Medplum and Firely support:
  ``criteria = Encounter?patient=Patient/a,Patient/b,…`` for up to ``BATCH`` patients each,
  ``payload`` application/fhir+json (the changed Encounter comes with the notification);
* **backport topic subscriptions** (R5 Subscriptions Backport IG, R4/R4B) where the server offers a
  topic for Encounters (``topic=`` its canonical URL): the topic as ``criteria``, the patients in
  ``backport-filter-criteria``, ``id-only`` payloads with numbered events and a heartbeat.

Every subscription carries a fresh random secret as a channel header (``Authorization: Bearer …``);
the server sends it back with each notification and the endpoint refuses anything without it. The
store keeps only its hash. Subscriptions **follow the open cases**: ``sync_subscriptions`` (run by
``fhir-cm subscribe`` and by every worker round once subscribed) recomputes the batches and creates,
updates or deletes ours so the criteria name exactly the open cases' patients. ``check_subscriptions``
(every worker round) reads each back: one the server put in ``error`` or ``off``, or lost, is asked to
be active again, and the tracking of its patients is queued as a catch-up for what it may have missed;
one the server no longer holds (``gone``: deleted there, or lost with its database) is made anew by
the next ``sync_subscriptions``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from ..errors import FhirCmError
from ..fhir import AsyncFhirClient, Conflict, FhirError, FhirRelease, ResourceNotFound, safe_for_tokens
from ..store import (
    HeldSubscription,
    Store,
    forget_subscription,
    list_subscriptions,
    open_case_patients,
    put_subscription,
    queue_tracking,
    secret_hash,
    update_subscription,
)
from ._membership import patient_ids

__all__ = [
    "BATCH",
    "SubscriptionRefused",
    "SubscriptionState",
    "SubscriptionsReport",
    "check_subscriptions",
    "subscription_states",
    "sync_subscriptions",
    "unsubscribe_all",
]

log = logging.getLogger("fhir_cm.sync")

BATCH = 50
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
TAG = {"system": "urn:fhir-cm:subscription", "code": "fhir-cm", "display": "made by fhir-cm"}
HEARTBEAT_SECONDS = 300
#: How long a delete the server refuses as a concurrent change (409) is tried again, every
#: ``DELETE_CONFLICT_STEP`` seconds: HAPI writes a subscription's status as it activates it, in the
#: background, so a delete right after a ``subscribe`` meets that write; it ends in a moment.
DELETE_CONFLICT_WAIT = 10.0
DELETE_CONFLICT_STEP = 0.5


class SubscriptionRefused(FhirCmError, ValueError):
    """A subscription this adapter will not ask a server for (an endpoint in the clear, say)."""


class SubscriptionsReport(BaseModel):
    """What ``sync_subscriptions`` / ``check_subscriptions`` / ``unsubscribe_all`` did."""

    patients: int = 0
    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    reactivated: list[str] = Field(default_factory=list)
    caught_up: int = Field(default=0, description="Patients queued for a catch-up poll.")


class SubscriptionState(BaseModel):
    """One subscription of ours as the server says it is now."""

    id: str
    server_id: str | None
    kind: str
    status: str
    error: str | None = None
    patients: int
    last_event: int | None = None
    last_notified_at: dt.datetime | None = None


def _watched_patients(store: Store, base: str) -> list[str]:
    with store.session(read_only=True) as session:
        return sorted({patient_ids(session, base, patient)[-1] for _, patient in open_case_patients(session)})


def _resource(sub_id: str, endpoint: str, secret: str, patients: Sequence[str], topic: str | None) -> dict[str, Any]:
    filter_ = "Encounter?patient=" + ",".join(f"Patient/{p}" for p in patients)
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"tag": [TAG]},
        "status": "requested",
        "reason": "fhir-cm: Encounters of the patients of open case-management cases",
        "criteria": filter_ if topic is None else topic,
        "channel": {
            "type": "rest-hook",
            "endpoint": f"{endpoint.rstrip('/')}/{sub_id}",
            "payload": "application/fhir+json",
            "header": [f"Authorization: Bearer {secret}"],
        },
    }
    if topic is not None:
        resource["meta"]["profile"] = [f"{BACKPORT}/backport-subscription"]
        resource["_criteria"] = {"extension": [{"url": f"{BACKPORT}/backport-filter-criteria", "valueString": filter_}]}
        resource["channel"]["_payload"] = {
            "extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": "id-only"}]
        }
        resource["channel"]["extension"] = [
            {"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": HEARTBEAT_SECONDS}
        ]
    return resource


def _criteria_of(resource: dict[str, Any]) -> str:
    return str(resource.get("criteria", ""))


async def sync_subscriptions(
    store: Store, client: AsyncFhirClient, *, endpoint: str | None = None, topic: str | None = None
) -> SubscriptionsReport:
    """Make our subscriptions on ``client``'s server name exactly the patients of the open cases.

    ``endpoint`` is where the server is to send notifications (the API's ``/notifications``); without
    it, the endpoint of the subscriptions already held is kept (a worker following the cases).
    """
    if endpoint is not None and not safe_for_tokens(endpoint):
        raise SubscriptionRefused(
            "the notification endpoint must be an https URL (or http on this machine's loopback): "
            "the server sends the subscription's secret with every notification"
        )
    if endpoint is not None and (urlsplit(endpoint).query or urlsplit(endpoint).fragment):
        raise SubscriptionRefused(
            "the notification endpoint must have no query or fragment: each subscription's id is added to its "
            "path (<endpoint>/<id>), and after a query it would reach no notification route"
        )
    base = client.base_url
    with store.session(read_only=True) as session:
        held = list_subscriptions(session, base)
    if endpoint is None:
        if not held:
            return SubscriptionsReport()
        endpoint, topic = held[0].endpoint, held[0].topic
    await _refuse_r5(client)
    patients = _watched_patients(store, base)
    batches = [patients[i : i + BATCH] for i in range(0, len(patients), BATCH)]
    report = SubscriptionsReport(patients=len(patients))
    for i, group in enumerate(batches):
        existing = held[i] if i < len(held) else None
        if existing is not None and existing.status == "gone":
            # The server no longer holds it (deleted there, or lost with its database): kept, it would
            # never notify again, and every round would queue a catch-up of its patients. Made anew.
            existing = existing.model_copy(update={"server_id": None})
        if (
            existing is not None
            and existing.patients == group
            and existing.endpoint == endpoint
            and existing.topic == topic  # asked for a topic now (or no more): the subscription changes kind
            and existing.server_id
        ):
            report.kept.append(existing.id)
            continue
        secret = secrets.token_urlsafe(32)
        sub_id = existing.id if existing is not None else f"sub-{uuid.uuid4().hex[:20]}"
        resource = _resource(sub_id, endpoint, secret, group, topic)
        if existing is not None and existing.server_id:
            resource["id"] = existing.server_id
            await _whole(
                _change(
                    store, client, resource, existing, patients=group, endpoint=endpoint, topic=topic, secret=secret
                )
            )
            report.updated.append(sub_id)
        else:
            await _whole(
                _make(
                    store,
                    client,
                    resource,
                    sub_id,
                    existing,
                    patients=group,
                    endpoint=endpoint,
                    topic=topic,
                    secret=secret,
                )
            )
            report.created.append(sub_id)
    for extra in held[len(batches) :]:
        await _whole(_remove(store, client, extra))
        report.removed.append(extra.id)
    return report


async def _whole(work: Awaitable[None]) -> None:
    """Run ``work`` — a subscription written (or deleted) on the server, then recorded — to its end though the
    command is stopped meanwhile (SIGTERM, Ctrl-C, a worker told to stop), which is then cancelled.

    The server makes or changes the subscription whether or not its answer is read: one it made
    and the store never heard of notified for ever with a secret nobody held (``unsubscribe`` does
    not know it either), and one it changed sent a new secret the store did not have, its
    notifications refused; one it deleted and the store still held was made again by a worker's
    next round. The wait is the write's (the client's timeouts bound it); a second
    signal still stops the process at once.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


async def _change(
    store: Store,
    client: AsyncFhirClient,
    resource: dict[str, Any],
    existing: HeldSubscription,
    *,
    patients: list[str],
    endpoint: str,
    topic: str | None,
    secret: str,
) -> None:
    """Change the subscription held on the server to ``resource``, and record it with its new secret."""
    await client.update(resource, versioned=False)
    with store.session() as session:
        update_subscription(
            session,
            existing.id,
            patients=patients,
            criteria=_criteria_of(resource),
            endpoint=endpoint,
            secret_hash=secret_hash(secret),
            status="requested",
            error=None,
            topic=topic,
            kind="topic" if topic else "criteria",
            # another topic's events are numbered afresh (criteria notifications carry none)
            last_event=existing.last_event if existing.topic == topic else None,
        )


async def _make(
    store: Store,
    client: AsyncFhirClient,
    resource: dict[str, Any],
    sub_id: str,
    existing: HeldSubscription | None,
    *,
    patients: list[str],
    endpoint: str,
    topic: str | None,
    secret: str,
) -> None:
    """Make the subscription on the server, and record it (in place of ``existing``, gone there)."""
    written = await client.create(resource)
    with store.session() as session:
        if existing is not None:
            forget_subscription(session, existing.id)
        put_subscription(
            session,
            HeldSubscription(
                id=sub_id,
                server_base=client.base_url,
                server_id=str(written.id),
                kind="topic" if topic else "criteria",
                endpoint=endpoint,
                topic=topic,
                criteria=_criteria_of(resource),
                patients=patients,
                secret_hash=secret_hash(secret),
                status="requested",
                created_at=dt.datetime.now(dt.UTC),
            ),
        )


async def _refuse_r5(client: AsyncFhirClient) -> None:
    """An R5 server takes only R5's own topic-based Subscription (``topic``, ``filterBy``,
    ``channelType``): the R4 shape made here is refused there with words about a missing topic
    (HAPI: 'No SubscriptionTopic exists with topic: null'), so it is not sent at all. A server whose
    release cannot be told (no usable ``/metadata``) is asked, and its answer says."""
    try:
        release = await client.release()
    except FhirError:
        return
    if release is FhirRelease.R5:
        raise SubscriptionRefused(
            f"{client.base_url} is a FHIR R5 server, which takes topic-based subscriptions only; fhir-cm makes "
            "R4/R4B subscriptions (criteria, or backport topic ones): the Encounter watch of each pull round "
            "(and the worker's) sees the hospital's changes there instead"
        )


async def _remove(store: Store, client: AsyncFhirClient, held: HeldSubscription) -> None:
    """Delete it on the server, and forget it: run whole (``_whole``), as a stop between the two left
    the store holding a subscription the server no longer had, which a worker's round made again."""
    await _delete(client, held)
    with store.session() as session:
        forget_subscription(session, held.id)


async def _delete(client: AsyncFhirClient, held: HeldSubscription) -> None:
    """Delete it on the server (gone already is done); a 409 is the server's own write under way (see
    ``DELETE_CONFLICT_WAIT``), and a delete is safe to send again, so it is, until that wait is over."""
    if not held.server_id:
        return
    waited = 0.0
    while True:
        try:
            await client.delete("Subscription", held.server_id)
            return
        except ResourceNotFound:
            return
        except Conflict:
            if waited >= DELETE_CONFLICT_WAIT:
                raise
            await asyncio.sleep(DELETE_CONFLICT_STEP)
            waited += DELETE_CONFLICT_STEP


async def subscription_states(store: Store, client: AsyncFhirClient) -> list[SubscriptionState]:
    """Each subscription of ours with its status read from the server now (``gone`` when it was deleted)."""
    with store.session(read_only=True) as session:
        held = list_subscriptions(session, client.base_url)
    out = []
    for h in held:
        status, error = "gone", None
        if h.server_id:
            try:
                copy = await client.read("Subscription", h.server_id)
                status, error = str(copy.get("status")), copy.get("error")
            except ResourceNotFound:
                pass
        with store.session() as session:
            update_subscription(session, h.id, status=status, error=(str(error)[:1000] if error else None))
        out.append(
            SubscriptionState(
                id=h.id,
                server_id=h.server_id,
                kind=h.kind,
                status=status,
                error=str(error) if error else None,
                patients=len(h.patients),
                last_event=h.last_event,
                last_notified_at=h.last_notified_at,
            )
        )
    return out


async def check_subscriptions(
    store: Store, client: AsyncFhirClient, *, now: dt.datetime | None = None
) -> SubscriptionsReport:
    """Re-activate ours that went to ``error``/``off`` (or missed their heartbeat, for topic subscriptions),
    and queue a catch-up poll of their patients: what was sent while they were down is read by polling."""
    report = SubscriptionsReport()
    moment = now or dt.datetime.now(dt.UTC)
    for state in await subscription_states(store, client):
        with store.session(read_only=True) as session:
            held = next(h for h in list_subscriptions(session, client.base_url) if h.id == state.id)
        silent = (
            held.kind == "topic"
            and held.last_notified_at is not None
            and moment - held.last_notified_at > dt.timedelta(seconds=2 * HEARTBEAT_SECONDS)
        )
        if state.status in ("active", "requested") and not silent:
            continue
        if held.server_id and state.status != "gone":
            try:
                copy = await client.read("Subscription", held.server_id)
                copy["status"] = "requested"
                copy.pop("error", None)
                await client.update(copy, versioned=False)
                report.reactivated.append(held.id)
            except FhirError as exc:
                log.warning("subscription %s could not be re-activated: %s", held.id, type(exc).__name__)
        with store.session() as session:
            report.caught_up += queue_tracking(session, client.base_url, patients=held.patients, reason="catch-up")
            update_subscription(
                session,
                held.id,
                status="requested" if held.id in report.reactivated else state.status,
                last_notified_at=moment,
            )
    return report


async def unsubscribe_all(store: Store, client: AsyncFhirClient) -> SubscriptionsReport:
    """Delete our subscriptions from the server (only ours: the store knows which) and forget them."""
    report = SubscriptionsReport()
    with store.session(read_only=True) as session:
        held = list_subscriptions(session, client.base_url)
    for h in held:
        await _whole(_remove(store, client, h))
        report.removed.append(h.id)
    return report
