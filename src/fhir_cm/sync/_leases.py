"""Outbox leases during a push: renewed while rows are worked on, taken over from dead holders.

A claim holds its rows for ``push_lease_seconds``. Two things made that unsafe or slow:

* **Renewal.** A batch claimed under a 60 s lease and pushed to a slow server outlived its lease,
  and a second worker could take rows the first was still pushing. ``LeaseKeeper`` renews, every
  third of the lease, every claim the push holds and has not settled yet — including rows still
  waiting for a free slot — in one statement. A claim found lost (another worker took it after all,
  e.g. the store was unreachable for a whole lease) is not started, and its settling is refused by
  the store's token check.
* **Takeover.** A push killed with ``kill -9`` left its rows leased, and a re-run skipped them until
  the lease ended. Claims now record their holder (``fhir_cm.store.LeaseHolder``); before each
  claim, ``take_over`` puts back the rows of holders on this host that are visibly dead, so the
  same claim picks them up. Rows of holders it cannot judge (another host, another container) wait
  for their lease, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy.orm import Session

from ..store import (
    LeaseHolder,
    OutboxItem,
    Store,
    StoreError,
    renew_leases,
    take_over_dead_leases,
)

__all__ = ["LeaseKeeper", "take_over"]

log = logging.getLogger("fhir_cm.sync")

_Result = TypeVar("_Result")

#: Renew when a third of the lease has passed: two renewals may fail (a store hiccup) before it ends.
RENEW_FRACTION = 1 / 3


def take_over(session: Session, me: LeaseHolder) -> list[OutboxItem]:
    """Return to pending the rows held by dead processes of this host (in the claim's transaction),
    logging whose they were; the claim that follows in the same transaction takes them."""
    taken = take_over_dead_leases(session, me)
    for holder, n in Counter(str(i.holder) for i in taken).items():
        log.warning(
            "took over %d outbox row(s) leased by %s, a process of this host that is no longer alive", n, holder
        )
    return taken


class LeaseKeeper:
    """Renews the leases of the claims a push holds until each is settled.

    ``hold`` claims as they are made, ``let_go`` each once settled; between ``start`` and ``stop`` a
    background task renews what is held every ``every`` seconds (a third of the lease by default).
    """

    def __init__(self, store: Store, lease_seconds: float, *, every: float | None = None) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.every = every if every is not None else lease_seconds * RENEW_FRACTION
        self._held: dict[int, OutboxItem] = {}
        self._lost: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.renewals = 0

    def hold(self, items: Iterable[OutboxItem]) -> None:
        """Keep these claims' leases alive from now on."""
        for item in items:
            self._held[item.id] = item
            self._lost.discard(item.id)

    def let_go(self, item: OutboxItem) -> None:
        """The claim is settled (or given back): stop renewing it."""
        self._held.pop(item.id, None)

    def held(self) -> list[OutboxItem]:
        """The claims held and not settled (nor given back) yet."""
        return list(self._held.values())

    def lost(self, item: OutboxItem) -> bool:
        """Whether a renewal found the claim taken by another worker: do not start pushing it."""
        return item.id in self._lost

    def start(self) -> None:
        """Start renewing in the background (on the running event loop)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop renewing; a renewal under way is let finish, so no store work outlives the push."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await task

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.every)
                return
            except TimeoutError:
                pass
            if not self._held:
                continue
            try:
                await self.renew()
            except StoreError as exc:  # the next renewal tries again, well within the lease
                log.warning("renewing outbox leases failed (%s); trying again in %.1fs", type(exc).__name__, self.every)

    async def renew(self) -> None:
        """Renew every held claim now (the background task calls this every ``every`` seconds)."""
        snapshot = dict(self._held)

        def work() -> set[int]:
            with self.store.session() as s:
                return {i.id for i in renew_leases(s, snapshot.values(), self.lease_seconds)}

        renewed = await _off_loop(self.store, work)
        self.renewals += 1
        gone = {i for i in snapshot if i not in renewed and i in self._held}  # not settled meanwhile
        if gone:
            log.warning("%d outbox row(s) were taken by another worker before this one finished them", len(gone))
            self._lost |= gone


async def _off_loop(store: Store, work: Callable[[], _Result]) -> _Result:
    """Store work in a thread (pushes in flight keep going), unless the store is one shared connection."""
    if not store.threadsafe:
        return work()
    return await asyncio.to_thread(work)
