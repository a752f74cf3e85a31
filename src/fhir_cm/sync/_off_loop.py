"""Store work off the event loop, so requests already sent to the server progress meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from ..store import Store

__all__ = ["off_loop"]

_Result = TypeVar("_Result")


async def off_loop(store: Store, work: Callable[[], _Result], *, whole: bool = False) -> _Result:
    """Run store work in a thread, so network requests already sent progress meanwhile — unless the
    store is one shared connection (in-memory SQLite), which two threads must not use at once.

    Cancelling the caller does not stop the thread; with ``whole``, the cancelled caller waits for
    the work's end before it goes on to its own clean-up (which must not pull what the work uses
    from under it).
    """
    if not store.threadsafe:
        return work()
    if not whole:
        return await asyncio.to_thread(work)
    working = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(working)
    except asyncio.CancelledError:
        await asyncio.wait({working})
        raise
