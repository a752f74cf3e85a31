"""Where the cases a person asked to push stand, and a push that finishes them or says why not.

``push_pending`` reports what *it* did. Someone who ran ``fhir-cm push cases.jsonl`` wants to know
something else: are the file's cases on the server now? A case may have been pushed by another
worker, be held by one right now, have failed earlier, or wait for a retry — and a push that
quietly left 35 of 300 cases out (they were leased by a process killed a moment before) must not
look like success. So ``push_asked`` pushes, then reads the outbox for the asked cases:

* rows of a dead process of this host were taken over by the push itself (``_leases``);
* rows **held by a live worker** (or one this host cannot judge) are waited for, up to the latest
  lease end seen when the wait began — a renewing holder does not keep us waiting for ever — and
  pushed again if their holder gave them back or its lease ran out (``wait=False`` skips this);
* whatever is still not pushed is reported with why: held by whom until when, failed (and why),
  or waiting for a retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Callable, Collection, Iterable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..store import OutboxItem, OutboxStatus, Store, held_leases, list_outbox
from ..store._types import utcnow
from ._push import push_pending
from ._report import PushReport

__all__ = ["NotPushed", "Standing", "push_asked", "where_cases_stand"]

_Result = TypeVar("_Result")

#: How often a waiting push looks at the rows it waits for (one small indexed query).
POLL_SECONDS = 0.25


class NotPushed(BaseModel):
    """An asked-for case that is not on the server at its latest revision, and why.

    ``held``: a worker (``holder``) is pushing it, its lease runs ``until``; ``failed``: failed for
    good, waiting for a person (``reason``); ``waiting``: queued again for a later push (``reason``).
    """

    case_id: str
    state: Literal["held", "failed", "waiting"]
    reason: str
    holder: str | None = None
    until: dt.datetime | None = None


class Standing(BaseModel):
    """How many of the asked cases are pushed, and each one that is not."""

    asked: int
    pushed: int
    not_pushed: list[NotPushed] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.pushed == self.asked

    @property
    def failed(self) -> list[NotPushed]:
        return [n for n in self.not_pushed if n.state == "failed"]

    def line(self) -> str:
        """``300 of 300 cases pushed`` (``, 35 not``): the answer to "did my push finish?"."""
        rest = f", {self.asked - self.pushed} not" if not self.complete else ""
        return f"{self.pushed} of {self.asked} cases pushed{rest}"

    def held_lines(self) -> list[str]:
        """One line per holder: ``12 cases held by worker W until T (c1, c2, c3, …)``."""
        by_holder: dict[str, list[NotPushed]] = {}
        for n in self.not_pushed:
            if n.state == "held":
                by_holder.setdefault(n.holder or "an unnamed worker", []).append(n)
        lines = []
        for holder, rows in by_holder.items():
            until = max(r.until for r in rows if r.until is not None).isoformat(timespec="seconds")
            ids = ", ".join(r.case_id for r in rows[:5]) + (", …" if len(rows) > 5 else "")
            noun = "case" if len(rows) == 1 else "cases"
            lines.append(f"{len(rows)} {noun} held by worker {holder} until {until} ({ids})")
        return lines


def where_cases_stand(store: Store, case_ids: Iterable[str], *, now: dt.datetime | None = None) -> Standing:
    """Read the outbox for ``case_ids``: pushed, or not and why (an open row wins over a failed one).

    A case with neither an open nor a failed row has nothing left to push: its latest change is on
    the server (done rows may since have been purged).
    """
    wanted = list(dict.fromkeys(case_ids))
    now = now or utcnow()
    with store.session(read_only=True) as s:
        rows = {
            status: _by_case(list_outbox(s, status=status, case_ids=wanted))
            for status in (OutboxStatus.IN_FLIGHT, OutboxStatus.PENDING, OutboxStatus.FAILED)
        }
    not_pushed = []
    for case_id in wanted:
        if (row := rows[OutboxStatus.IN_FLIGHT].get(case_id)) is not None:
            if row.lease_expires_at is not None and row.lease_expires_at >= now:
                reason = f"held by worker {row.claimed_by} until {row.lease_expires_at.isoformat(timespec='seconds')}"
                not_pushed.append(
                    NotPushed(
                        case_id=case_id, state="held", reason=reason, holder=row.claimed_by, until=row.lease_expires_at
                    )
                )
            else:
                reason = f"the lease of worker {row.claimed_by} ran out; the next push takes it"
                not_pushed.append(NotPushed(case_id=case_id, state="waiting", reason=reason, holder=row.claimed_by))
        elif (row := rows[OutboxStatus.PENDING].get(case_id)) is not None:
            reason = row.last_error or "queued for the next push"  # last_error: why the last try failed
            not_pushed.append(NotPushed(case_id=case_id, state="waiting", reason=reason))
        elif (row := rows[OutboxStatus.FAILED].get(case_id)) is not None:
            not_pushed.append(NotPushed(case_id=case_id, state="failed", reason=row.last_error or "failed"))
    return Standing(asked=len(wanted), pushed=len(wanted) - len(not_pushed), not_pushed=not_pushed)


def _by_case(items: list[OutboxItem]) -> dict[str, OutboxItem]:
    return {i.case_id: i for i in items}  # the latest row of each case (rows come oldest first)


async def push_asked(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    case_ids: Collection[str],
    *,
    wait: bool = True,
    on_wait: Callable[[list[OutboxItem], dt.datetime], None] | None = None,
    poll: float = POLL_SECONDS,
    **options: Any,
) -> tuple[PushReport, Standing]:
    """Push the outbox (``push_pending``, ``options`` passed on), then see ``case_ids`` through.

    With ``wait``, rows of these cases held by other workers are waited for until the latest of
    their leases (as it stood when the wait began) has ended, then pushed if they are still due;
    ``on_wait(held rows, until)`` is told once, when the wait begins. Returns the report of every push made
    and where the asked cases stand at the end.
    """
    report = await push_pending(store, client, settings, **options)
    deadline: dt.datetime | None = None
    while wait:
        held = await _off_loop(store, lambda: _held(store, case_ids))
        if not held:
            break
        if deadline is None:
            deadline = max(i.lease_expires_at or utcnow() for i in held)
            if on_wait is not None:
                on_wait(held, deadline)
        elif utcnow() > deadline:
            break  # live holders renewing their leases: report them rather than wait for ever
        await _until_released(store, held, deadline, poll)
        # Rows their holder finished need nothing; rows it gave back, or whose lease ran out, do.
        if await _off_loop(store, functools.partial(_left_over, store, held)):
            report.add(await push_pending(store, client, settings, **options))
    return report, where_cases_stand(store, case_ids)


def _held(store: Store, case_ids: Collection[str]) -> list[OutboxItem]:
    with store.session(read_only=True) as s:
        return held_leases(s, case_ids=case_ids)


def _left_over(store: Store, held: list[OutboxItem]) -> bool:
    """Whether any of the cases ``held`` was held for is now there for a claim (pending, or its lease over)."""
    ids = [i.case_id for i in held]
    now = utcnow()
    with store.session(read_only=True) as s:
        pending = list_outbox(s, status=OutboxStatus.PENDING, case_ids=ids)
        in_flight = list_outbox(s, status=OutboxStatus.IN_FLIGHT, case_ids=ids)
    return bool(pending) or any(i.lease_expires_at is None or i.lease_expires_at < now for i in in_flight)


async def _off_loop(store: Store, work: Callable[[], _Result]) -> _Result:
    """Store work in a thread, unless the store is one shared connection (in-memory SQLite)."""
    return await asyncio.to_thread(work) if store.threadsafe else work()


async def _until_released(store: Store, held: list[OutboxItem], deadline: dt.datetime, poll: float) -> None:
    """Return once any of the ``held`` claims is settled or given back, or ``deadline`` has passed."""
    tokens = {i.claim_token for i in held}
    ids = [i.case_id for i in held]
    while utcnow() <= deadline:
        await asyncio.sleep(poll)
        still = await _off_loop(store, lambda: _held(store, ids))
        if {i.claim_token for i in still} != tokens:
            return
