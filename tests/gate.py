"""An ASGI gate in front of a test server (``sekmet_server(wrap=gate.wrapping)``): it holds one
request until the test lets it go, so a client is caught mid-run at a known point — a signal sent
while a pull waits for a search, a push for its transaction — whatever the machine's pace."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["Gate"]

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


class Gate:
    """Holds the first request whose path ends with ``/<held>`` (and whose method is ``method``, if
    given) until ``release`` is set; ``seen`` once it came."""

    def __init__(self, held: str, method: str | None = None) -> None:
        self.held, self.method = held, method
        self.seen = threading.Event()
        self.release = threading.Event()

    def wrapping(self, app: App) -> App:
        async def gated(scope: Scope, receive: Any, send: Any) -> None:
            if self._holds(scope) and not self.seen.is_set():
                self.seen.set()
                await asyncio.to_thread(self.release.wait)
            await app(scope, receive, send)

        return gated

    def _holds(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["path"].endswith(f"/{self.held}")
            and self.method in (None, scope["method"])
        )
