"""The outbox loop: keeps the server busy with claimed batches, in waves, under renewed leases.

``push_pending`` claims the due outbox rows in batches (``_Claimer``: each row at most once per
call, after taking over the rows of dead processes on this host), renews their leases until each is
settled (``_leases``), and pushes up to ``concurrency`` cases at once (``_push_case``). Batches are
pipelined: while one goes out the next is claimed and prepared, so it is ready when the last cases of
the one before take their slots (``_PushLoop.run``), and no more than two batches are in hand. The
first batch is a wave (``concurrency`` rows), prepared with nothing else for the server to do; the
batches after it double up to ``push_batch_size``, each prepared while the one before goes out
(``_Claimer``). Each row is settled (``_settle``) only after its ledger entries are written, in groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..config import Settings
from ..domain import Case
from ..fhir import AsyncFhirClient
from ..store import (
    LeaseHolder,
    LeaseLost,
    StoreError,
    OutboxItem,
    Store,
    UnreadableCase,
    claim_outbox,
    queue_push,
    case_revisions,
    get_case,
    list_ledger,
    release_claim,
    save_case,
)
from ..terminology import terminology
from ._leases import LeaseKeeper, take_over
from ._push_case import push_case
from ._off_loop import off_loop
from ._push_session import PushSession
from ._report import CaseFailure, PushReport
from ._settle import Settler

__all__ = ["default_worker_id", "enqueue_unpushed", "push_cases", "push_pending"]

log = logging.getLogger("fhir_cm.sync")

#: A claimed row with its case as the store holds it (None if it is gone).
#: A claimed row with its case as stored: None if it is gone, ``UnreadableCase`` if this version cannot read it.
_Row = tuple[OutboxItem, Case | UnreadableCase | None]
#: Cases saved by the caller of a push, by id, with the revision each was saved at.
Saved = Mapping[str, tuple[int, Case]]


def default_worker_id() -> str:
    """``host:pid``: unique among the workers sharing a store, and readable in the outbox."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def push_pending(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    concurrency: int | None = None,
    worker_id: str | None = None,
    on_case: Callable[[str, bool], None] | None = None,
    feed: Callable[[], Saved | None] | None = None,
    stop: asyncio.Event | None = None,
) -> PushReport:
    """Push every due outbox row to ``client``'s server; returns what happened.

    Claims rows in batches (growing from ``concurrency`` to ``settings.push_batch_size``) under a lease of
    ``settings.push_lease_seconds``, pushes up to ``concurrency`` cases at once, and settles each row
    only after its ledger entries are written: done, pending again (transient failures, retried by a
    later push) or failed (conflicts and refusals, for a person). A row is tried at most once per
    call. ``on_case(case_id, ok)`` is called as each case finishes (for progress bars). ``feed`` is
    store work for the claims to come, done in the store's thread before the first claim (while the
    first requests to the server are out) and then while each claimed batch goes out
    (``push_cases`` saves its cases there, a batch at a time). It may return the cases it saved
    with their revisions, which a claim then takes as they are rather than reading them back
    (unless saved again since).

    Leases (``_leases``): every claim first takes over the rows of dead processes of this host, and
    the leases of all claimed, unsettled rows are renewed in the background until they are settled.

    Once ``stop`` is set (a worker told to shut down), nothing more is claimed and claimed rows whose
    case has not started are given back untried (``release_claim``): the cases in flight finish and
    are settled, the rest is at once another worker's, not held until the lease ends.
    """
    keeper = LeaseKeeper(store, settings.push_lease_seconds)
    keeper.start()
    try:
        loop = _PushLoop(store, client, settings, keeper, concurrency, worker_id or default_worker_id(), on_case)
        loop.stop = stop or asyncio.Event()
        loop.claim.feed = feed
        return await loop.run()
    finally:
        await keeper.stop()


class _Batch:
    """One claimed batch: its rows' cases, and whether its last rows hold their slots yet."""

    def __init__(self, rows: list[_Row]) -> None:
        self.items = [item for item, _ in rows]
        self.cases = {item.id: case for item, case in rows}
        self.waiting = len(rows)  # rows not yet holding a slot
        self.all_started = asyncio.Event()

    def cases_of(self, items: list[OutboxItem]) -> list[Case]:
        return [case for item in items if isinstance(case := self.cases[item.id], Case)]

    def one_started(self) -> None:
        self.waiting -= 1
        if not self.waiting:
            self.all_started.set()


class _PushLoop:
    """The stages of one ``push_pending`` call: start, send a batch, push a row, claim the next."""

    def __init__(
        self,
        store: Store,
        client: AsyncFhirClient,
        settings: Settings,
        keeper: LeaseKeeper,
        concurrency: int | None,
        worker: str,
        on_case: Callable[[str, bool], None] | None,
    ) -> None:
        self.store, self.keeper, self.on_case = store, keeper, on_case
        self.wave = concurrency or settings.push_concurrency
        self.slots = asyncio.Semaphore(self.wave)
        self.session = PushSession(store, client, settings)
        self.claim = _Claimer(store, worker, settings, tried=set(), saved={}, first=self.wave)
        self.settler = Settler(store)
        self.pushing = 0  # cases between taking a slot and settling
        self.report = PushReport()
        self.stop = asyncio.Event()  # set: claim nothing more, give back what has not started
        self.started: set[int] = set()  # rows whose case took a slot (their push may have begun)

    async def run(self) -> PushReport:
        """Push batch after batch until nothing is due (or ``stop``); the report of every case.

        A push that fails (the server down when it starts, a batch's lookups refused) gives back the
        rows it claimed and did not start: they were left in flight until their lease ended, so a
        worker that lived on (or ``push --all``, waiting for a live holder) left them alone that long
        after the server was back.
        """
        sent: list[asyncio.Future[list[None]]] = []
        try:
            return await self.batches(sent)
        except asyncio.CancelledError:
            # Ctrl-C or SIGTERM (the command cancels the push): the cases in flight end here, while
            # the client is open. Left running, they met a closed client, and their batches' failures
            # were printed at exit as "exception was never retrieved" tracebacks. The cases that
            # finished are settled, and every other claim is given back, the started ones too (pushed
            # again, they find what this push wrote): they stayed leased, and a worker of another host
            # took them only once the lease ran out.
            for sending in sent:
                sending.cancel()
            await asyncio.gather(*sent, return_exceptions=True)
            await self.settler.drain()
            await self.give_back(self.keeper.held())
            raise
        except Exception:
            await asyncio.gather(*sent, return_exceptions=True)  # nothing is left running
            await self.give_back([item for item in self.keeper.held() if item.id not in self.started])
            raise

    async def give_back(self, items: list[OutboxItem]) -> None:
        """Put claims back untried and stop renewing them (a push failing or stopped)."""
        try:
            await off_loop(self.store, functools.partial(_give_back, self.store, items))
        except StoreError as exc:  # their leases end as before
            log.warning("giving back %d outbox row(s) failed (%s)", len(items), type(exc).__name__)
        for item in items:
            self.keeper.let_go(item)

    async def batches(self, sent: list[asyncio.Future[list[None]]]) -> PushReport:
        rows = await self.start()
        prepared: asyncio.Future[None] | None = None
        earlier: _Batch | None = None
        while rows:
            batch = _Batch(rows)
            sending, prepared = self.send_batch(batch, after=prepared)
            sent.append(sending)
            # The next batch is claimed and prepared while this one goes out, so that it is ready
            # when this one's last cases take their slots: the server always has a case to work
            # on. The claim waits for this batch's preparation (whose ledger reads would otherwise
            # queue behind it in the store's thread) and, so that no more than two batches are in
            # hand, for the batch before to hold all its slots.
            await asyncio.wait({prepared})
            if prepared.exception() is not None:  # (it is the push's failure, raised below)
                break
            if earlier is not None and not await _started_or_failed(earlier, sent[-2]):
                break
            earlier = batch
            if self.stop.is_set():
                break
            rows = await self.claimed(self.claim.fed_then_claim)
        await asyncio.gather(*sent)
        return self.report

    async def start(self) -> list[_Row]:
        """Learn the server and claim the first batch at once.

        The first claim (store work, after the claimer's ``feed``) runs while the event loop waits
        for the server's first answers, as does loading the code tables (once, on first mapping):
        neither is in the path of the first case.
        """

        # Each is let finish: a claim made while the server failed to answer is given back (``run``).
        started, loaded, rows = await asyncio.gather(
            self.session.start(),
            asyncio.to_thread(terminology),
            self.claimed(self.claim.fed_then_claim),
            return_exceptions=True,
        )
        for outcome in (started, loaded, rows):
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(rows, list)
        return rows

    async def claimed(self, claim: Callable[[], list[_Row]]) -> list[_Row]:
        """Claim (store work, off the loop) and have the keeper renew the claim's leases at once.

        A lease runs from its claim, not from when its batch goes out: the first batch waits for the
        server's first answers (its CapabilityStatement, the adapter's Device), which a slow server
        may take longer than a lease to give, and its rows were then taken by another worker.
        """
        claiming = asyncio.ensure_future(off_loop(self.store, claim))
        try:
            rows = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # Stopped while the claim runs in the store's thread: the claim goes on, and its rows,
            # unknown to the keeper, would stay leased to this process until the lease ran out.
            # Held, they are given back with the others (``run``).
            await asyncio.wait({claiming})
            if not claiming.cancelled() and claiming.exception() is None:
                self.keeper.hold(item for item, _ in claiming.result())
            raise
        self.keeper.hold(item for item, _ in rows)
        return rows

    def send_batch(
        self, batch: _Batch, *, after: asyncio.Future[None] | None
    ) -> tuple[asyncio.Future[list[None]], asyncio.Future[None]]:
        """Push a batch's rows once they are prepared; returns the push and the preparation, which
        (lookups on the server) starts once the batch before is prepared (``after``)."""
        ready = asyncio.ensure_future(_after(after, self.session.prepare_quietly(batch.cases_of(batch.items))))
        sending = asyncio.gather(*(self.push_row(batch, item, ready) for item in batch.items), ready)
        return sending, ready

    async def push_row(self, batch: _Batch, item: OutboxItem, ready: asyncio.Future[None]) -> None:
        """Push one row's case once its batch is prepared and a slot is free, then settle the row."""
        await ready
        case = batch.cases[item.id]
        async with self.slots:
            batch.one_started()
            self.started.add(item.id)
            if self.keeper.lost(item):  # another worker has it now: it pushes the case
                self.keeper.let_go(item)
                return
            if self.stop.is_set():  # shutting down: the case goes back untried, to whoever is next
                await off_loop(self.store, functools.partial(_give_back, self.store, [item]))
                self.keeper.let_go(item)
                return
            if case is None:
                outcome = PushReport(cases=1, failed=1)
                outcome.failures.append(
                    CaseFailure(case_id=item.case_id, reason="case not in the store", permanent=True)
                )
            elif isinstance(case, UnreadableCase):
                # Kept queued (tried again on later pushes, backing off): a version that reads it, or
                # the stored case mended, sends it without anyone having to queue it again.
                outcome = PushReport(cases=1, failed=1)
                outcome.failures.append(CaseFailure(case_id=item.case_id, reason=str(case), permanent=False))
            else:
                self.pushing += 1
                try:
                    outcome = await push_case(self.session, case)
                finally:
                    self.pushing -= 1
        unsaved = self.session.take_unsaved(item.case_id)
        await self.settler.settle(item, outcome, unsaved, last=not self.pushing)
        self.keeper.let_go(item)
        self.report.add(outcome)
        if self.on_case is not None:
            self.on_case(item.case_id, outcome.ok)


class _Claimer:
    """Claims the next batch of due rows, each at most once per push call (a row put back pending by
    a transient failure waits for the next call rather than being retried in a tight loop).

    The batches grow from ``first`` rows, doubling up to ``settings.push_batch_size``: the first
    batch is prepared (its lookups on the server) with nothing else for the server to do, and each
    next one while the one before goes out, which it must not outlast.
    """

    def __init__(
        self,
        store: Store,
        worker: str,
        settings: Settings,
        tried: set[int],
        saved: dict[str, tuple[int, Case]],
        *,
        first: int | None = None,
    ) -> None:
        self.store, self.worker, self.settings, self.tried = store, worker, settings, tried
        self.limit = min(first or settings.push_batch_size, settings.push_batch_size)
        self.saved = saved  # case id → (revision, case) of the cases this call saved (``push_cases``)
        self.feed: Callable[[], Saved | None] | None = None  # store work for the claims to come
        self.holder = LeaseHolder.current()

    def take_fed(self) -> None:
        """Do the ``feed``'s store work (save the next cases to push), keeping what it saved."""
        if self.feed is not None:
            self.saved.update(self.feed() or {})

    def fed_then_claim(self) -> list[_Row]:
        """The ``feed``'s store work, then the claim that finds what it queued."""
        self.take_fed()
        return self()

    def __call__(self) -> list[_Row]:
        """The fresh rows claimed, each with its case as the store holds it (None if it is gone)."""
        with self.store.session() as s:
            take_over(s, self.holder)
            claimed = claim_outbox(
                s,
                self.worker,
                limit=self.limit,
                lease_seconds=self.settings.push_lease_seconds,
                holder=self.holder,
            )
            for item in claimed:
                if item.id in self.tried:
                    release_claim(s, item)
        self.limit = min(2 * self.limit, self.settings.push_batch_size)
        fresh = [item for item in claimed if item.id not in self.tried]
        self.tried.update(item.id for item in fresh)
        if not fresh:
            return []
        with self.store.session(read_only=True) as s:
            # A case this call saved and nobody saved since is the one in memory: not decoded again.
            revisions = (
                case_revisions(s, ids=[i.case_id for i in fresh if i.case_id in self.saved]) if self.saved else {}
            )
            return [(item, self._known(item.case_id, revisions) or _stored(s, item.case_id)) for item in fresh]

    def _known(self, case_id: str, revisions: dict[str, int]) -> Case | None:
        revision, case = self.saved.get(case_id, (None, None))
        return case if revision is not None and revisions.get(case_id) == revision else None


def _give_back(store: Store, items: list[OutboxItem]) -> None:
    """Put claims back untried; one taken meanwhile (its lease ended) is the taker's."""
    with store.session() as s:
        for item in items:
            with contextlib.suppress(LeaseLost):
                release_claim(s, item)


def _stored(session: Session, case_id: str) -> Case | UnreadableCase | None:
    try:
        return get_case(session, case_id)
    except UnreadableCase as exc:  # one case this version cannot read must not stop the push of the others
        return exc


async def _after(first: asyncio.Future[None] | None, then: Awaitable[None]) -> None:
    if first is not None:
        await first
    await then


async def _started_or_failed(batch: _Batch, sending: asyncio.Future[list[None]]) -> bool:
    """Wait until every row of ``batch`` holds a slot (True) or its push has failed (False)."""
    started = asyncio.ensure_future(batch.all_started.wait())
    await asyncio.wait({sending, started}, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    started.cancel()
    return not (sending.done() and sending.exception() is not None)


async def push_cases(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    cases: Iterable[Case],
    **options: Any,
) -> PushReport:
    """Save ``cases`` to the store (queueing each, even if unchanged), and push the outbox.

    The cases are saved a claim's worth at a time (``_Saving``): a wave's worth before the first
    claim, then, growing as the claims do, the next batch while each claimed batch goes out, so the
    server starts on the first cases rather than waiting for all of them to be saved. Whatever happens to the push, every case
    is saved and queued when this returns or raises.
    """
    wave = options.get("concurrency") or settings.push_concurrency
    saving = _Saving(store, list(cases), settings.push_batch_size, first=wave)
    try:
        return await push_pending(store, client, settings, feed=saving, **options)
    finally:
        if saving.left:
            await off_loop(store, saving.rest)


class _Saving:
    """The cases of a ``push_cases`` call, saved and queued a batch per call, batches doubling from
    ``first`` to ``batch`` as the claims do (the whole list at once when a case appears twice in it: each is saved in turn, and the push takes the last). A lock
    keeps a claim still saving in its thread and ``rest`` from saving a case twice."""

    def __init__(self, store: Store, cases: list[Case], batch: int, *, first: int) -> None:
        self.store = store
        whole = len({case.id for case in cases}) < len(cases)
        self.batch = max(len(cases), 1) if whole else batch
        self.next = self.batch if whole else min(first, batch)
        self.cases = cases
        self._lock = threading.Lock()

    @property
    def left(self) -> bool:
        return bool(self.cases)

    def __call__(self) -> Saved:
        with self._lock:
            saved = self._save(self.next)
            self.next = min(2 * self.next, self.batch)
            return saved

    def rest(self) -> None:
        """Save what the push did not get to (it failed, or was cancelled)."""
        with self._lock:
            self._save(len(self.cases))

    def _save(self, count: int) -> Saved:
        part = self.cases[:count]
        saved: dict[str, tuple[int, Case]] = {}
        if part:
            with self.store.session() as s:
                for case in part:
                    revision = save_case(s, case, enqueue=False)
                    queue_push(s, case.id, revision)
                    saved[case.id] = (revision, case)
            self.cases = self.cases[len(part) :]  # only once committed: a failed save is tried again
        return saved


def enqueue_unpushed(store: Store, server_base: str) -> int:
    """Queue every case whose EpisodeOfCare the ledger does not know on ``server_base``; returns how many."""
    with store.session() as s:
        pushed = {e.key for e in list_ledger(s, server_base) if e.resource_type == "EpisodeOfCare"}
        # Ids only, not the cases: one this version cannot read is queued as well (its push says why).
        todo = [case_id for case_id in case_revisions(s) if case_id not in pushed]
        for case_id in todo:
            queue_push(s, case_id)
    return len(todo)
