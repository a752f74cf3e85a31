"""Settling pushed outbox rows in groups: each row's outcome with its case's ledger entries.

A case's row is settled only with the ledger entries its push recorded, in the same transaction: the
entries are never written without the row being settled, nor the row settled without them. Rows
whose cases finish while an earlier group is being written wait and go together in the next
transaction, so under load a push commits once per group rather than once per case. A group is
written once ``SETTLE_GROUP`` rows wait or ``SETTLE_LINGER_SECONDS`` after its first row came, as a
message producer batches its sends: a case finishing alone is settled at once but for that wait, and
a busy push does not pay a transaction's fixed cost (statements compiled, a commit) for each case.
Rows that wait are still claimed and leased: a process that stops meanwhile leaves them to be pushed
again, which finds what they wrote (conditional creates match, stable ids are read back). A row
another worker has taken over (``LeaseLost``) is not settled by this push, but its ledger entries are
written all the same: what it wrote is on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from sqlalchemy.orm import Session

from ..store import (
    LeaseLost,
    LedgerEntry,
    OutboxItem,
    Store,
    mark_push_failed,
    mark_pushed,
    mark_pushed_many,
    put_ledger,
)
from ._off_loop import off_loop
from ._report import PushReport

__all__ = ["SETTLE_GROUP", "SETTLE_LINGER_SECONDS", "Settler"]

log = logging.getLogger("fhir_cm.sync")

_Settling = tuple[OutboxItem, PushReport, list[LedgerEntry]]

#: Rows that, waiting, are written at once rather than after the linger.
SETTLE_GROUP = 32
#: How long the first row of a group waits for others (measured on a push to an in-memory server:
#: about five rows a group at 20 ms, against nearly every row alone without the wait).
SETTLE_LINGER_SECONDS = 0.02


class Settler:
    """Settles rows in groups, off the event loop; ``settle`` returns once the row's group is written."""

    def __init__(
        self, store: Store, *, group: int = SETTLE_GROUP, linger_seconds: float = SETTLE_LINGER_SECONDS
    ) -> None:
        self.store, self.group, self.linger = store, group, linger_seconds
        self._waiting: list[tuple[_Settling, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._full = asyncio.Event()

    async def settle(
        self, item: OutboxItem, outcome: PushReport, entries: list[LedgerEntry], *, last: bool = False
    ) -> None:
        """Settle the row with its case's ledger entries; returns once its group is written.

        ``last``: no other case is being pushed, so none would join the group while it lingers.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(((item, outcome, entries), done))
        if last or len(self._waiting) >= self.group:
            self._full.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        await done

    async def drain(self) -> None:
        """Return once every row handed to ``settle`` is written, waiting no linger: a push being
        stopped settles the cases that finished before it gives the rest of its claims back."""
        self._full.set()
        if self._writer is not None:
            await asyncio.wait({self._writer})

    async def _write(self) -> None:
        while self._waiting:
            if len(self._waiting) < self.group and self.linger > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.linger)
            self._full.clear()
            group, self._waiting = self._waiting, []
            try:
                await off_loop(self.store, functools.partial(settle_rows, self.store, [row for row, _ in group]))
            except Exception as exc:  # every waiting case learns of it
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                # A case's wait is cancelled (Ctrl-C) while its group is written: the rows are
                # settled all the same, and the others of the group still learn it.
                for _, done in group:
                    if not done.done():
                        done.set_result(None)


def settle_rows(store: Store, rows: list[_Settling]) -> None:
    """Settle ``rows`` in one transaction; if one was taken over meanwhile, each on its own."""
    try:
        with store.session() as s:
            put_ledger(s, _last_of_each([entry for _, _, entries in rows for entry in entries]))
            mark_pushed_many(s, (item for item, outcome, _ in rows if outcome.ok))
            for item, outcome, _ in rows:
                if not outcome.ok:
                    _mark(s, item, outcome)
    except LeaseLost:
        for row in rows:
            _settle_alone(store, *row)


def _last_of_each(entries: list[LedgerEntry]) -> list[LedgerEntry]:
    """The group's entries for one statement, the last of each resource only (two cases of one
    patient both record the Patient): whatever way a driver batches the upsert, each row is written
    once (a multi-row ``INSERT … ON CONFLICT`` may not touch a row twice), and the later case's
    entry stands, as when each case wrote its own in turn."""
    return list({(e.server_base, e.resource_type, e.key): e for e in entries}.values())


def _settle_alone(store: Store, item: OutboxItem, outcome: PushReport, entries: list[LedgerEntry]) -> None:
    try:
        with store.session() as s:
            _settle_one(s, item, outcome, entries)
    except LeaseLost:
        log.warning("outbox item %s was taken over by another worker before it was settled", item.id)
        with store.session() as s:  # what this push wrote is on the server all the same
            put_ledger(s, entries)


def _settle_one(session: Session, item: OutboxItem, outcome: PushReport, entries: list[LedgerEntry]) -> None:
    put_ledger(session, entries)
    _mark(session, item, outcome)


def _mark(session: Session, item: OutboxItem, outcome: PushReport) -> None:
    if outcome.ok:
        mark_pushed(session, item)
    else:
        failure = outcome.failures[0]
        mark_push_failed(
            session, item, failure.reason, retry=not failure.permanent, delay_seconds=failure.retry_after or 0.0
        )
