"""Reading a search's first pages ahead, while the pull still works on the type before.

A pull takes types in order (a case's episode before its parts), and each type's search was started
only once the type before was done. Some servers answer a page only after a pause of their own —
HAPI's pages after the first took about half a second each, whatever their size, with its JVM
about a third busy (``benchmarks/bench_pull.py``) — so the pull waited at every type for pages the
server could have been preparing all along. ``ReadAhead`` starts the next type's search at once and keeps up to
``depth`` of its pages, which the pull then takes in as if they had just come; the rest of the
search goes on from there. Memory: ``depth`` pages more, whatever the pull's size.

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

#: Pages of the next type read while the pull works on the current one: a few seconds of HAPI's pace,
#: a megabyte or two of parsed resources.
READ_AHEAD_PAGES = 3

_END = object()


class ReadAhead:
    """The pages of one search, the first ``depth`` of them fetched from the moment it is made."""

    def __init__(self, pages: AsyncIterator[Page[dict[str, Any]]], depth: int = READ_AHEAD_PAGES) -> None:
        self._pages = pages
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max(1, depth))
        self._task = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        try:
            async for page in self._pages:
                await self._queue.put(page)
        except Exception as exc:  # handed to the reader, which raises it where it reads
            await self._queue.put(exc)
        else:
            await self._queue.put(_END)

    async def __aiter__(self) -> AsyncIterator[Page[dict[str, Any]]]:
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            await self.close()

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
