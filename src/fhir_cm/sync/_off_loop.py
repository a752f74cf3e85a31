"""Store work off the event loop, so requests already sent to the server progress meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from ..store import Store

__all__ = ["off_loop"]

_Result = TypeVar("_Result")


async def off_loop(store: Store, work: Callable[[], _Result]) -> _Result:
    """Run store work in a thread, so network requests already sent progress meanwhile — unless the
    store is one shared connection (in-memory SQLite), which two threads must not use at once."""
    if not store.threadsafe:
        return work()
    return await asyncio.to_thread(work)
