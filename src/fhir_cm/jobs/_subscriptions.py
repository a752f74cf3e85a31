"""Subscriptions: make the server notify fhir-cm of Encounter changes for open cases' patients;
list them with their status; remove ours; and receive what the server sends."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..store import Store
from ..sync import (
    NotificationOutcome,
    SubscriptionState,
    SubscriptionsReport,
    receive_notification,
    subscription_states,
    sync_subscriptions,
    unsubscribe_all,
)
from ._clients import push_client, require_fhir_base

__all__ = ["list_subscriptions_on_server", "notified", "subscribe", "unsubscribe"]


async def subscribe(
    store: Store, settings: Settings, endpoint: str, *, topic: str | None = None
) -> SubscriptionsReport:
    """Subscriptions naming exactly the open cases' patients, notifying ``endpoint`` (``<API>/notifications``)."""
    require_fhir_base(settings)
    async with push_client(settings) as client:
        return await sync_subscriptions(store, client, endpoint=endpoint, topic=topic)


async def list_subscriptions_on_server(store: Store, settings: Settings) -> list[SubscriptionState]:
    """Ours, each with its status as the server says it now."""
    require_fhir_base(settings)
    async with push_client(settings) as client:
        return await subscription_states(store, client)


async def unsubscribe(store: Store, settings: Settings) -> SubscriptionsReport:
    """Delete ours from the server (never another's)."""
    require_fhir_base(settings)
    async with push_client(settings) as client:
        return await unsubscribe_all(store, client)


def notified(
    store: Store, subscription_id: str, secret: str | None, body: Any, resource_path: tuple[str, str] | None = None
) -> NotificationOutcome:
    """One notification received by the API (checked, deduplicated, its tracking queued)."""
    return receive_notification(store, subscription_id, secret, body, resource_path=resource_path)
