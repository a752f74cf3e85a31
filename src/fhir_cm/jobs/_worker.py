"""The sync worker: push the outbox, then pull and track, round after round."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..store import Store
from ..sync import (
    Pause,
    PushReport,
    check_subscriptions,
    pull_and_track,
    run_worker,
    sync_subscriptions,
    track_notified,
)
from ._clients import pull_client, push_client

__all__ = ["run_sync_worker"]


async def run_sync_worker(
    store: Store,
    settings: Settings,
    *,
    interval: float = 5.0,
    once: bool = False,
    stop: asyncio.Event | None = None,
    on_round: Callable[[PushReport], None] | None = None,
    pause: Pause | None = None,
) -> PushReport:
    """Push (with the push client) then pull and track (with the pull client, as :func:`run_pull`
    does; a discharge's follow-up is pushed in the same round) every ``interval`` seconds until
    ``stop`` is set; one round with ``once``. A ``Retry-After`` either client was given holds the
    rounds back as long as the server asked (``pause``, when given, does the waiting).

    Returns the push totals over every round. Raises ``NoFhirServer`` without a server.
    """
    async with push_client(settings) as client, pull_client(settings) as reader:

        async def notified_step(store: Store, pusher: AsyncFhirClient, settings: Settings) -> object:
            return await track_notified(store, reader, settings, push_with=pusher)

        async def pull_step(store: Store, pusher: AsyncFhirClient, settings: Settings) -> object:
            report = await pull_and_track(store, reader, settings, push_with=pusher)
            # Subscriptions (once made with `fhir-cm subscribe`) follow the open cases, and one the server
            # dropped is re-activated with a catch-up poll of its patients (queued for the next round).
            await sync_subscriptions(store, pusher)
            await check_subscriptions(store, pusher)
            return report

        return await run_worker(
            store,
            client,
            settings,
            interval=interval,
            once=once,
            steps=[notified_step, pull_step],
            stop=stop,
            on_round=on_round,
            readers=[reader],
            pause=pause,
        )
