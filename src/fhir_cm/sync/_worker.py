"""A sync worker: push the outbox (and run any further steps, e.g. a pull) again and again.

Several workers may share one PostgreSQL store: each claims outbox rows with ``SKIP LOCKED`` under a
lease, so no two push one case at once; a live worker renews the leases of what it still works on,
and one that dies mid-batch leaves its rows to the others once the lease expires — at once to a
worker of the same host, which can see it is dead (``_leases``). Rows other live workers hold are
skipped and come back in a later round. Nothing is held between rounds, so a worker may be stopped
(or killed) at any moment. Told to stop (``stop``: SIGTERM or SIGINT for ``fhir-cm worker``), it
finishes the cases in flight, gives back the rows it claimed but has not started and skips the rest
of the round, rather than pushing the whole outbox and pulling before it exits; a pull under way is
cancelled (``_unless_stopped``).

A server that answered 429 or 503 with a ``Retry-After`` longer than the client's retries wait
(``AsyncFhirClient.asked_to_wait``) is left alone that long: the round stops at that step and the
next one begins once the wait is over (at most ``MAX_RETRY_AFTER``), not after ``interval``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ..config import Settings
from ..fhir import AsyncFhirClient, FhirError
from ..store import Store, StoreError
from ._push import default_worker_id, push_pending
from ._push_case import MAX_RETRY_AFTER
from ._push_session import failure_reason
from ._report import PushReport

__all__ = ["Step", "run_worker"]

log = logging.getLogger("fhir_cm.sync")

#: A further step of each round (a pull, say): given the store, client and settings.
Step = Callable[[Store, AsyncFhirClient, Settings], Awaitable[object]]
#: Waits between rounds: given the stop event and the seconds to wait, returns when either is over.
Pause = Callable[[asyncio.Event, float], Awaitable[None]]


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _unless_stopped(work: Awaitable[object], stop: asyncio.Event) -> None:
    """Run a further step of the round, cancelled once the worker is told to stop.

    A step is a pull (a whole server's changes, minutes), which ran to its end before the worker
    exited: a container runtime's grace period (30 s) cut it short with ``kill -9``. Cancelled, the
    pull merges nothing and its watermarks stay, as after ``fhir-cm pull`` stopped; its scratch file
    and check worker go with it, and a follow-up push it started gives its claims back.
    """
    step = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({step, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # this round cancelled too (the worker's own task): the step goes with it
        stopping.cancel()
        if not step.done():
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
    if not step.cancelled():
        step.result()


def _why(exc: FhirError | StoreError) -> str:
    """What a failed round's log line says: of a server's failure, ``failure_reason`` (no id, no
    data); of the store's, its message, which names the database's cause (down, full, refused) and
    never a row's data (``store._errors``)."""
    if isinstance(exc, FhirError):
        return failure_reason(exc)
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _asked_to_wait(clients: Sequence[AsyncFhirClient]) -> float | None:
    """The longest wait a server asked any of ``clients`` for that is not over, at most an hour."""
    waits = [wait for c in clients if (wait := c.asked_to_wait())]
    return min(max(waits), MAX_RETRY_AFTER) if waits else None


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
    readers: Sequence[AsyncFhirClient] = (),
    pause: Pause | None = None,
) -> PushReport:
    """Push (then run ``steps``) every ``interval`` seconds until ``stop`` is set; once with ``once``.

    A round that fails on the server or the store is logged and the next round tries again: a
    worker outlives a server restart. ``readers`` are the further clients the steps use: a
    ``Retry-After`` given to any of them, or to ``client``, ends the round and holds the next one
    back as long as the server asked (``pause`` does the waiting). Returns the totals over every round.
    """
    worker = worker_id or default_worker_id()
    stop = stop or asyncio.Event()
    clients = [client, *readers]
    pause = pause or _pause
    total = PushReport()
    while not stop.is_set():
        failed: str | None = None
        try:
            report = await push_pending(store, client, settings, worker_id=worker, stop=stop)
            total.add(report)
            if on_round is not None:
                on_round(report)
            for step in steps:
                if stop.is_set() or _asked_to_wait(clients):
                    break  # the server asked for time: the rest of the round waits for the next one
                await _unless_stopped(step(store, client, settings), stop)
        except (FhirError, StoreError) as exc:
            if once:
                raise
            failed = _why(exc)
        if once:
            break
        asked = _asked_to_wait(clients)
        wait = max(interval, asked or 0.0)
        if failed is not None:
            log.warning("sync round failed (%s); trying again in %.0fs", failed, wait)
        elif asked:
            log.warning("the FHIR server asked to wait; next sync round in %.0fs", wait)
        await pause(stop, wait)
    return total
