"""EHR servers that cannot answer, as real sockets on loopback: a port nothing listens on, and a
server that takes every connection and never writes a byte (an overloaded or wedged server)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


def closed_port() -> str:
    """A loopback base nothing listens on: a port taken and given back (connection refused)."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fhir"


@dataclass
class SilentServer:
    """A listening socket that accepts and never answers; ``connections()`` says how many it took."""

    base: str
    _listener: socket.socket
    _accepted: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connections(self) -> int:
        """Every connection made so far, those still waiting in the listen backlog included."""
        with self._lock:
            self._listener.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                while True:
                    self._accepted.append(self._listener.accept()[0])
            return len(self._accepted)


@contextlib.contextmanager
def silent_server(hang_up_after: float | None = None) -> Iterator[SilentServer]:
    """A :class:`SilentServer`; with ``hang_up_after``, each connection is closed that many seconds
    after it was taken, still unanswered (a gateway giving up), so a client that waits and retries
    without a bound of its own ends all the same."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    server = SilentServer(f"http://127.0.0.1:{listener.getsockname()[1]}/fhir", listener)
    stop = threading.Event()
    timers: list[threading.Timer] = []

    def take() -> None:
        while not stop.is_set():
            with server._lock:
                listener.settimeout(0.05)
                try:
                    conn = listener.accept()[0]
                except (TimeoutError, BlockingIOError):
                    continue
                except OSError:
                    return
                server._accepted.append(conn)
            if hang_up_after is not None:
                timer = threading.Timer(hang_up_after, conn.close)
                timer.daemon = True
                timer.start()
                timers.append(timer)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join()
        for timer in timers:
            timer.cancel()
        for conn in server._accepted:
            conn.close()
        listener.close()
