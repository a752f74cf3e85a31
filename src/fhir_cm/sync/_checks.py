"""Checking pulled resources, in a second process once a pull proves large.

Every resource a pull takes in is first checked against its release's strict fhir.resources model,
and ours against the mapping (``fhir_cm.checks``). The strict model is the single largest cost of a
pull (about a third of its busy CPU in profiles of 10,000 resources), and it needs nothing but the
resource: so once a pull has fetched enough to be worth a process start (``OFFLOAD_AFTER``
resources), the pages are checked in a worker process while the pull's own process places and
merges the page before. A worker still starting, or one that failed,
leaves the checks where they were: in the pull, one page at a time, with the same answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


from .. import decimals
from ..checks import load_models, problems_of
from ..mapping import FhirVersion
from ..process import as_helper

__all__ = ["OFFLOAD_AFTER", "Checker"]

log = logging.getLogger("fhir_cm.sync")

#: How many resources a pull fetches before it starts a worker process for the checks: a process
#: start (about half a second of CPU: the models and the mapping) and each page's trip to the
#: worker are worth it only for a pull that goes on long after. Measured on 2 cores shared with the server (sekmet),
#: a worker started at 1,000 made pulls of 2,500 and 10,000 resources about a sixth slower and one
#: of 100,000 about a ninth faster than checking every page in the pull; with the worker importing
#: only ``fhir_cm.checks``, one started at 2,000 or 5,000 still made a 10,000-resource pull slower
#: (medians of three: 5.9 and 6.2 s against 4.8 s): three processes then share the 2 cores.
OFFLOAD_AFTER = 20_000


class Checker:
    """Checks pages of one pull, in a worker process once the pull has fetched ``offload_after``
    resources and the worker has started; inline (``problems`` gives None) until then."""

    def __init__(
        self, version: FhirVersion, system: str, types: Iterable[str] = (), *, offload_after: int | None = None
    ) -> None:
        self.version, self.system, self.types = version, system, tuple(types)
        self.offload_after = OFFLOAD_AFTER if offload_after is None else offload_after
        self.seen = 0
        #: Pages the worker checked (the rest were checked in the pull).
        self.offloaded = 0
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._ready: asyncio.Future[None] | None = None
        self._failed = False

    @property
    def started(self) -> bool:
        """Whether this pull has a worker process (starting or up)."""
        return self._pool is not None

    def submit(self, batch: Sequence[Mapping[str, Any]]) -> asyncio.Future[list[str | None]] | None:
        """Start checking ``batch`` in the worker, if it is ready; None means: check it inline."""
        self.seen += len(batch)
        if self._failed or not batch:
            return None
        if self._pool is None:
            if self.seen >= self.offload_after:
                self._start()
            return None
        if self._ready is None or not self._ready.done():
            return None
        if self._ready.exception() is not None:  # the worker did not start: the checks stay here
            self._failed = True
            return None
        try:
            return asyncio.get_running_loop().run_in_executor(
                self._pool, problems_of, decimals.dumps(list(batch)), self.version, self.system
            )
        except Exception as exc:  # the pool broke since (a worker killed): the checks are the pull's again
            log.warning("the pull's check worker stopped (%s); checking in the pull from here on", type(exc).__name__)
            self._failed = True
            return None

    async def problems(self, checking: asyncio.Future[list[str | None]] | None) -> list[str | None] | None:
        """The answers of a ``submit``, or None where the page is to be checked inline (no worker,
        or the worker broke: its pages are checked inline from then on)."""
        if checking is None:
            return None
        try:
            answers = await checking
        except Exception as exc:  # a broken pool, a worker killed…: the checks are the pull's again
            self._failed = True
            log.warning("the pull's check worker stopped (%s); checking in the pull from here on", type(exc).__name__)
            return None
        self.offloaded += 1
        return answers

    async def start(self) -> bool:
        """Start the worker now and wait until it is ready; whether it is (else checks stay inline)."""
        if self._pool is None and not self._failed:
            self._start()
        if self._ready is None:
            return False
        try:
            await self._ready
        except Exception:  # the worker could not start: the checks stay in the pull
            self._failed = True
            return False
        return True

    def _start(self) -> None:
        try:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=as_helper
            )
            self._ready = asyncio.get_running_loop().run_in_executor(self._pool, load_models, self.version, self.types)
        except Exception as exc:  # no child processes here (a daemonic process cannot have any): stay inline
            log.info("no check worker for this pull (%s); checking in the pull", type(exc).__name__)
            self._failed = True
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._ready = None, None

    def close(self) -> None:
        """Stop the worker: idle by then (every page it was given has been answered) unless the pull
        failed, and what it was still checking is not needed any more."""
        if self._ready is not None:
            if not self._ready.done():
                self._ready.cancel()
            elif not self._ready.cancelled():
                self._ready.exception()  # seen: a start that failed is not reported again when collected
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
