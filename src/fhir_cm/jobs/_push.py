"""Push: the cases of a file, cases given, or everything pending — and where the asked cases stand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from ..config import Settings
from ..domain import Case
from ..store import OutboxItem, OutboxStatus, Store, queue_push, list_outbox, outbox_counts, save_case
from ..sync import PushReport, Standing, enqueue_unpushed, push_asked
from ._clients import push_client, require_fhir_base

__all__ = ["PushOutcome", "PushVerdict", "run_push"]

#: ``pushed``: every case asked for is on the server; ``failed``: one failed for good (a conflict,
#: a refused resource); ``later``: some are not pushed yet (held by another worker, or waiting for
#: a retry) — run it again later.
PushVerdict = Literal["pushed", "failed", "later"]


class PushOutcome(BaseModel):
    """What a push did (``report``) and where the cases asked for stand now (``standing``)."""

    report: PushReport
    standing: Standing
    asked: list[str]

    @property
    def verdict(self) -> PushVerdict:
        if self.report.permanent_failures or self.standing.failed:
            return "failed"
        # Asked-for cases count as they stand now (a retry after waiting may have pushed one that
        # failed before); another case pushed along that failed still makes it not a clean success.
        asked = set(self.asked)
        if not self.standing.complete or any(f.case_id not in asked for f in self.report.failures):
            return "later"
        return "pushed"

    def summary(self) -> dict[str, Any]:
        """The report's counts and the standing in one JSON object (``push --json``, the API's report)."""
        return self.report.model_dump(mode="json") | self.standing.model_dump(mode="json")


async def run_push(
    store: Store,
    settings: Settings,
    *,
    cases: Sequence[Case] = (),
    everything_pending: bool = False,
    wait: bool = True,
    concurrency: int | None = None,
    on_wait: Callable[[list[OutboxItem], dt.datetime], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_case: Callable[[str, bool], None] | None = None,
) -> PushOutcome:
    """Push ``cases`` (saved and queued first), or with ``everything_pending`` every queued case and
    every case not yet pushed to this server; then see the asked cases through.

    The cases asked for are ``cases``, or (``everything_pending``) every case queued when the push
    starts. With ``wait``, cases another live worker holds are waited for until its lease ends
    (``on_wait`` is told once); ``on_start(rows)`` is told how many rows are due before the first
    claim, ``on_case(case_id, ok)`` as each case finishes. Raises ``NoFhirServer`` without a server.
    """
    base = require_fhir_base(settings)
    if cases:
        with store.session() as s:
            for case in cases:
                save_case(s, case, enqueue=False)
                queue_push(s, case.id)
    if everything_pending:
        enqueue_unpushed(store, base)
    with store.session(read_only=True) as s:
        due = outbox_counts(s)[OutboxStatus.PENDING]
        if everything_pending:
            queued = list_outbox(s, status=OutboxStatus.PENDING) + list_outbox(s, status=OutboxStatus.IN_FLIGHT)
            asked = list(dict.fromkeys([c.id for c in cases] + [i.case_id for i in queued]))
        else:
            asked = list(dict.fromkeys(c.id for c in cases))
    if on_start is not None:
        on_start(due)
    async with push_client(settings) as client:
        report, standing = await push_asked(
            store,
            client,
            settings,
            asked,
            wait=wait,
            on_wait=on_wait,
            concurrency=concurrency,
            on_case=on_case,
        )
    return PushOutcome(report=report, standing=standing, asked=asked)
