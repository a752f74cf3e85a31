"""Notifications from a FHIR server's subscriptions: checked, understood, deduplicated, queued.

A notification arrives at ``/notifications/<subscription id>`` (with ``/<Type>/<id>`` appended when a
server delivers the resource itself, as HAPI's R4 rest-hook does with a ``PUT``). It is accepted only
with the subscription's secret (``Authorization: Bearer …``, compared by hash in constant time); an
unknown subscription and a wrong or missing secret are refused alike, and nothing is recorded. Then:

* a **handshake** or **heartbeat** (backport status ``type``) says the channel works: the
  subscription is noted active and alive; a heartbeat whose ``eventsSinceSubscriptionStart`` is past
  the last event received says events were lost on the way: a **gap**, caught up as below; one
  counting fewer (or a handshake after events) says the server **numbers afresh** (HAPI keeps its
  counters in memory and starts again from 1 after a restart): the numbering starts again, with a
  catch-up;
* an **event notification** (backport ``history`` Bundle) carries event numbers: one already seen is a
  repeat and is dropped; a jump past the next expected number is a **gap** (events lost on the way),
  and the tracking of all the subscription's patients is queued as a catch-up; each event's resource
  (full) or its reference (id-only, as ``Type/id`` however the server wrote it) is queued, and an
  event naming none (empty) queues all the subscription's patients. An event number past the notification's own
  ``eventsSinceSubscriptionStart`` is refused: kept, it would make every later event look like a repeat;
  a notification counting fewer events than were received numbers afresh too (its events followed, a
  catch-up queued): a late delivery reads the same, and costs a catch-up, where dropping it would
  drop a restarted server's events until their numbers passed the last one held;
* an R4 criteria notification carries the changed **resource** itself (queued by its patient, unless
  the ledger already holds that version), or **nothing** (empty payload: one of the subscription's
  patients changed — all are queued).

Nothing is tracked here: the worker works the queue (``_tracking_queue``). So the endpoint answers at
once, and a notification is not lost if the worker is down.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from ..errors import FhirCmError
from ..mapping import parse_reference, patient_of
from ..store import (
    HeldSubscription,
    Store,
    get_subscription,
    ledger_by_server_id,
    queue_tracking,
    record_event_number,
    secret_hash,
    update_subscription,
)
from ._intake import version_of

__all__ = [
    "NotificationMalformed",
    "NotificationOutcome",
    "NotificationRefused",
    "check_secret",
    "receive_notification",
]


class NotificationRefused(FhirCmError, PermissionError):
    """Not a notification of ours: unknown subscription, or a missing or wrong secret."""


class NotificationMalformed(FhirCmError, ValueError):
    """A notification Bundle that is not one (a status in a shape the backport does not define)."""


class NotificationOutcome(BaseModel):
    """What a notification was, and what it queued."""

    kind: Literal["handshake", "heartbeat", "event-notification", "resource", "empty", "query-status"]
    queued: int = 0
    duplicates: int = 0
    gap: bool = False
    #: The server numbers its events afresh (restarted, or a new handshake): a catch-up is queued.
    restarted: bool = False


def _status_of(bundle: Mapping[str, Any]) -> dict[str, Any] | None:
    """The backport status (R4 ``Parameters`` or R4B ``SubscriptionStatus``) of a notification Bundle,
    flattened; None when the Bundle carries none. Raises :class:`NotificationMalformed` when it does,
    but not in a shape the backport defines."""
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise NotificationMalformed("the notification Bundle's entry is not a list of entries")
    first = entries[0].get("resource") if entries else None
    if not isinstance(first, Mapping):
        return None
    try:
        if first.get("resourceType") == "SubscriptionStatus":
            return {
                "type": first.get("type"),
                "events": first.get("eventsSinceSubscriptionStart"),
                "notifications": [
                    {"number": e.get("eventNumber"), "focus": _reference((e.get("focus") or {}).get("reference"))}
                    for e in first.get("notificationEvent") or []
                ],
            }
        if first.get("resourceType") == "Parameters":
            out: dict[str, Any] = {"notifications": []}
            for p in first.get("parameter") or []:
                name = p.get("name")
                if name == "type":
                    out["type"] = p.get("valueCode")
                elif name == "events-since-subscription-start":
                    out["events"] = _value(p)
                elif name == "notification-event":
                    parts = {q.get("name"): q for q in p.get("part") or []}
                    focus = parts.get("focus", {}).get("valueReference") or {}
                    out["notifications"].append(
                        {"number": _value(parts.get("event-number", {})), "focus": _reference(focus.get("reference"))}
                    )
            return out
    except (AttributeError, TypeError):
        raise NotificationMalformed(
            "the notification's status is not a backport SubscriptionStatus or Parameters"
        ) from None
    return None


#: The types a server gives a count or an event number in: the backport's string (R4 has no integer64),
#: and the integers servers use instead (the reference implementation sends unsignedInt).
_NUMBER_TYPES = (
    "valueString",
    "valueInteger64",
    "valueUnsignedInt",
    "valuePositiveInt",
    "valueInteger",
    "valueDecimal",
)


def _value(parameter: Mapping[str, Any]) -> Any:
    """A count or event number, whichever of the types a server chose (the first given), or None."""
    return next((parameter[t] for t in _NUMBER_TYPES if parameter.get(t) is not None), None)


#: Event numbers are kept in a 64-bit signed column; a larger one is no event number of a server's.
_MAX_EVENT = 2**63 - 1


def _number(value: Any) -> int | None:
    try:
        number = int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return None
    return number if number is None or 0 <= number <= _MAX_EVENT else None


def _count(status: Mapping[str, Any]) -> int | None:
    """The status's ``eventsSinceSubscriptionStart``, or None when it gives none."""
    given = status.get("events")
    count = _number(given)
    if given is not None and count is None:
        raise NotificationMalformed("eventsSinceSubscriptionStart is not a whole number from 0 to 2^63 - 1")
    return count


def _alive(
    store: Store, held: HeldSubscription, kind: str, count: int | None, last: int, moment: dt.datetime
) -> NotificationOutcome:
    """A handshake, heartbeat or status: the channel works. A heartbeat counting more events than
    were received says some were lost on the way (the backport's way to detect them): catch up. One
    counting fewer, or a handshake (a sequence starting), says the server numbers events afresh."""
    outcome = NotificationOutcome.model_validate({"kind": kind})
    restarted = _restarted(kind, count, last)
    with store.session() as session:
        if restarted or (kind == "heartbeat" and count is not None and count > last):
            outcome.gap = True
            outcome.restarted = restarted
            outcome.queued = queue_tracking(session, held.server_base, patients=held.patients, reason="gap", now=moment)
            update_subscription(session, held.id, last_notified_at=moment, status="active")
            record_event_number(session, held.id, count or 0, restarted_from=last if restarted else None)
        else:
            update_subscription(session, held.id, last_notified_at=moment, status="active")
    return outcome


def _restarted(kind: str, count: int | None, last: int) -> bool:
    """Whether the server numbers its events afresh: it counts fewer events since the subscription's
    start than were already received from it. A server keeping its counters in memory (HAPI) starts
    again from 1 after a restart, and each event up to the last one held would otherwise be dropped
    as a repeat. A handshake starts a sequence, counting none when it gives no count. A notification
    delivered late, after a later one, looks the same: taken for a restart, it costs a catch-up but
    loses nothing, where the other reading would lose every event of a restarted server."""
    if kind == "handshake":
        return (count or 0) < last
    return count is not None and count < last


def _reference(value: Any) -> str | None:
    """A focus reference as ``Type/id`` (servers send it relative, absolute or versioned), or None when
    there is none or it names no resource (the event is then followed as an ``empty`` one)."""
    if value is not None and not isinstance(value, str):
        raise NotificationMalformed("a notification event's focus reference is not a string")
    address = parse_reference(value)
    return "/".join(address) if address is not None else None


def check_secret(store: Store, subscription_id: str, presented_secret: str | None) -> HeldSubscription:
    """The subscription, if the secret presented is its own (compared by hash, in constant time);
    raises :class:`NotificationRefused` otherwise — alike for an unknown subscription."""
    with store.session(read_only=True) as session:
        held = get_subscription(session, subscription_id)
    presented = secret_hash(presented_secret) if presented_secret else ""
    if held is None or not hmac.compare_digest(presented, held.secret_hash):
        raise NotificationRefused("not a notification of a subscription of ours (unknown, or no or a wrong secret)")
    return held


def receive_notification(
    store: Store,
    subscription_id: str,
    presented_secret: str | None,
    body: Any,
    *,
    resource_path: tuple[str, str] | None = None,
    now: dt.datetime | None = None,
) -> NotificationOutcome:
    """Check, understand and queue one notification (see the module docstring)."""
    moment = now or dt.datetime.now(dt.UTC)
    held = check_secret(store, subscription_id, presented_secret)
    if body is not None and not isinstance(body, Mapping):
        raise NotificationMalformed("the notification body is not a FHIR resource (a JSON object)")
    if isinstance(body, Mapping) and body.get("resourceType") == "Bundle" and (status := _status_of(body)) is not None:
        return _backport(store, held, body, status, moment)
    if isinstance(body, Mapping) and body.get("resourceType") == "Bundle":
        resources = [e.get("resource") for e in body.get("entry") or [] if isinstance(e, Mapping)]
        return _resources(store, held, [r for r in resources if isinstance(r, Mapping)], moment)
    if isinstance(body, Mapping) and body.get("resourceType"):
        return _resources(store, held, [body], moment)
    with store.session() as session:
        update_subscription(session, held.id, last_notified_at=moment, status="active")
        if resource_path is not None:
            queued = queue_tracking(
                session, held.server_base, resource="/".join(resource_path), reason="notification", now=moment
            )
            return NotificationOutcome(kind="resource", queued=queued)
        queued = queue_tracking(session, held.server_base, patients=held.patients, reason="notification", now=moment)
    return NotificationOutcome(kind="empty", queued=queued)


def _resources(
    store: Store, held: HeldSubscription, resources: list[Mapping[str, Any]], moment: dt.datetime
) -> NotificationOutcome:
    outcome = NotificationOutcome(kind="resource")
    watched = set(held.patients)
    with store.session() as session:
        update_subscription(session, held.id, last_notified_at=moment, status="active")
        for r in resources:
            known = ledger_by_server_id(session, held.server_base, str(r.get("resourceType")), str(r.get("id")))
            if known is not None and known.version_id is not None and known.version_id == version_of(r):
                outcome.duplicates += 1
                continue
            patient = patient_of(r)
            if patient in watched:
                outcome.queued += queue_tracking(
                    session, held.server_base, patients=[patient], reason="notification", now=moment
                )
    return outcome


def _backport(
    store: Store, held: HeldSubscription, bundle: Mapping[str, Any], status: dict[str, Any], moment: dt.datetime
) -> NotificationOutcome:
    kind = status.get("type") or "event-notification"
    if kind not in ("handshake", "heartbeat", "query-status", "event-notification"):
        raise NotificationMalformed(f"unknown notification type {str(kind)[:40]!r}")
    count = _count(status)
    held_last = held.last_event or 0
    if kind in ("handshake", "heartbeat", "query-status"):
        return _alive(store, held, kind, count, held_last, moment)
    # A server numbering afresh: none of its events is a repeat, and those it sent since it restarted
    # (or lost in the restart) are caught up.
    restarted = _restarted(kind, count, held_last)
    last = 0 if restarted else held_last
    outcome = NotificationOutcome(kind="event-notification")
    if any(e.get("number") is not None and _number(e.get("number")) is None for e in status.get("notifications", [])):
        raise NotificationMalformed("an event number is not a whole number from 0 to 2^63 - 1")
    numbers = [n for e in status.get("notifications", []) if (n := _number(e.get("number"))) is not None]
    if count is not None and any(n > count for n in numbers):
        # Kept, such a number would make every later event of the server's look like a repeat.
        raise NotificationMalformed("an event number is past the events the notification says there were")
    events = status.get("notifications", [])
    # An event the server gave no number cannot be told from a repeat: followed, not counted.
    fresh = [e for e in events if (n := _number(e.get("number"))) is None or n > last]
    outcome.duplicates = len(events) - len(fresh)
    fresh_numbers = sorted(n for n in numbers if n > last)
    outcome.gap = restarted or (bool(fresh_numbers) and fresh_numbers[0] > last + 1)  # events lost before these
    outcome.restarted = restarted
    full = {
        f"{r.get('resourceType')}/{r.get('id')}": r
        for e in (bundle.get("entry") or [])[1:]
        if isinstance(e, Mapping) and isinstance((r := e.get("resource")), Mapping)
    }
    # An ``empty`` payload names no resource (or lists no event, only the count): any patient may have changed.
    everyone = any(not e.get("focus") for e in fresh) or (not events and count is not None and count > last)
    with store.session() as session:
        if outcome.gap:
            outcome.queued += queue_tracking(
                session, held.server_base, patients=held.patients, reason="gap", now=moment
            )
        elif everyone:
            outcome.queued += queue_tracking(
                session, held.server_base, patients=held.patients, reason="notification", now=moment
            )
        for event in fresh:
            focus = event.get("focus")
            resource = full.get(focus) if focus else None
            patient = patient_of(resource) if resource is not None else None
            if patient is not None and patient in held.patients:
                outcome.queued += queue_tracking(
                    session, held.server_base, patients=[patient], reason="notification", now=moment
                )
            elif focus:
                outcome.queued += queue_tracking(
                    session, held.server_base, resource=focus, reason="notification", now=moment
                )
        newest = max(numbers, default=count if not events and count is not None else last)
        update_subscription(session, held.id, last_notified_at=moment, status="active")
        # Only forward, but for a restart: another notification may have been handled meanwhile.
        record_event_number(session, held.id, max(newest, last), restarted_from=held_last if restarted else None)
    return outcome
