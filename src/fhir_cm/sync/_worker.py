"""A sync worker: push the outbox (and run any further steps, e.g. a pull) again and again.

Several workers may share one PostgreSQL store: each claims outbox rows with ``SKIP LOCKED`` under a
lease, so no two push one case at once; a live worker renews the leases of what it still works on,
and one that dies mid-batch leaves its rows to the others once the lease expires — at once to a
worker of the same host, which can see it is dead (``_leases``). Rows other live workers hold are
skipped and come back in a later round. Nothing is held between rounds, so a worker may be stopped
(or killed) at any moment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ..config import Settings
from ..fhir import AsyncFhirClient, FhirError
from ..store import Store, StoreError
from ._push import default_worker_id, push_pending
from ._report import PushReport

__all__ = ["Step", "run_worker"]

log = logging.getLogger("fhir_cm.sync")

#: A further step of each round (a pull, say): given the store, client and settings.
Step = Callable[[Store, AsyncFhirClient, Settings], Awaitable[object]]


async def run_worker(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    interval: float = 5.0,
    once: bool = False,
    worker_id: str | None = None,
    steps: Sequence[Step] = (),
    stop: asyncio.Event | None = None,
    on_round: Callable[[PushReport], None] | None = None,
) -> PushReport:
    """Push (then run ``steps``) every ``interval`` seconds until ``stop`` is set; once with ``once``.

    A round that fails on the server or the store is logged and the next round tries again: a
    worker outlives a server restart. Returns the totals over every round.
    """
    worker = worker_id or default_worker_id()
    stop = stop or asyncio.Event()
    total = PushReport()
    while not stop.is_set():
        try:
            report = await push_pending(store, client, settings, worker_id=worker)
            total.add(report)
            if on_round is not None:
                on_round(report)
            for step in steps:
                await step(store, client, settings)
        except (FhirError, StoreError) as exc:
            if once:
                raise
            log.warning("sync round failed (%s); trying again in %.0fs", type(exc).__name__, interval)
        if once:
            break
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
    return total
