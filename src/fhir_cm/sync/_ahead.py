"""Reading a search's first pages ahead, while the pull still works on the type before.

A pull takes types in order (a case's episode before its parts), and each type's search was started
only once the type before was done. Some servers answer a page only after a pause of their own —
HAPI's pages after the first took about half a second each, whatever their size, with its JVM
about a third busy (``benchmarks/bench_pull.py``) — so the pull waited at every type for pages the
server could have been preparing all along. ``ReadAhead`` starts the next type's search at once and keeps up to
``depth`` of its pages, which the pull then takes in as if they had just come; the rest of the
search goes on from there. Memory: ``depth`` pages more before the pull comes to the type, one
while it reads it, whatever the pull's size.

A failure of the search (a type the server refuses, a server error) is kept and raised where the
pull would have met it: when it comes to that type.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ..fhir import Page

__all__ = ["READ_AHEAD_PAGES", "ReadAhead"]

#: Pages of the next type read while the pull works on the current one: a second or more of HAPI's
#: pace; at most a few megabytes of parsed resources (a page of 200 EpisodeOfCare or CareTeam
#: resources takes about 2.5 MB once parsed).
READ_AHEAD_PAGES = 2

_END = object()


class ReadAhead:
    """The pages of one search, the first ``depth`` of them fetched from the moment it is made.

    Once the pull reads them, one page at most waits here (besides the one the search has asked
    for next): the pull takes pages in faster than most servers give them, and where it does not
    (a fast server on the same cores), pages piling up ahead of it would only cost memory.
    """

    def __init__(self, pages: AsyncIterator[Page[dict[str, Any]]], depth: int = READ_AHEAD_PAGES) -> None:
        self._pages = pages
        self._queue: asyncio.Queue[Any] = asyncio.Queue()  # bounded by ``_limit``, in ``_fill``
        self._limit = max(1, depth)
        self._room = asyncio.Condition()
        self._task = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        pages = aiter(self._pages)
        try:
            while True:
                async with self._room:  # the next page is asked for only when there is room for it
                    await self._room.wait_for(lambda: self._queue.qsize() < self._limit)
                try:
                    page = await anext(pages)
                except StopAsyncIteration:
                    break
                self._queue.put_nowait(page)
        except Exception as exc:  # handed to the reader, which raises it where it reads
            self._queue.put_nowait(exc)
        else:
            self._queue.put_nowait(_END)

    async def __aiter__(self) -> AsyncIterator[Page[dict[str, Any]]]:
        await self._make_room(limit=1)
        try:
            while True:
                item = await self._queue.get()
                await self._make_room()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            await self.close()

    async def _make_room(self, limit: int | None = None) -> None:
        async with self._room:
            if limit is not None:
                self._limit = limit
            self._room.notify_all()

    async def close(self) -> None:
        """Stop reading (a pull that failed, or stopped before this type): nothing is left running."""
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StopAsyncIteration, RuntimeError, AttributeError):
            aclose = getattr(self._pages, "aclose", None)
            if aclose is not None:
                await aclose()
