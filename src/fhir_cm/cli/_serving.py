"""How ``fhir-cm serve`` stops: within ``FHIR_CM_SHUTDOWN_GRACE`` of the signal, at once when told again.

uvicorn, told to stop, let the requests under way finish with no limit: an API-triggered pull of a
whole server (minutes) outlasted systemd's ``TimeoutStopSec`` or a pod's grace period, and the
SIGKILL that followed came mid-write. Its ``timeout_graceful_shutdown`` alone would not bound that:
it is counted from when its shutdown starts, on the event loop, which a pull merging its cases holds
(no ``await`` there) until its last transaction. A second SIGTERM did nothing (uvicorn forces only on
a second SIGINT, and then skips the app's shutdown); the ``--workers`` supervisor ignored any repeat.

Here the grace runs from the signal, on a timer signal (SIGALRM) whose handler, as asyncio's own
Ctrl-C handler does, runs on the main thread between two bytecodes and cancels the requests still
running: a pull merging sees it between transactions (``sync._pull_merge._stopped``) and stops after
the one under way, its watermarks unmoved; a pull still reading stops at its next ``await``; a push
gives its claims back; a route in a thread (one transaction) finishes it. The server then waits for
the cancelled requests to wind down before the app's shutdown closes the store. A second SIGTERM or
SIGINT cancels them at once. The process exits 0 when every request finished within the grace, 143
(130 when SIGINT stopped it) when some had to be cancelled.

With ``--workers``, the supervisor passes its first signal on as SIGTERM, and a later one as
SIGUSR1, "at once": systemd's default (``KillMode=control-group``) sends SIGTERM to every process of
the service, so a worker receives the supervisor's SIGTERM besides its own, and a repeat there is not
the operator's second signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Generator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

__all__ = ["run"]

log = logging.getLogger("fhir_cm.serve")

#: What the supervisor sends a worker to have it cancel its requests at once.
AT_ONCE = signal.SIGUSR1
_STOPS = (signal.SIGINT, signal.SIGTERM)


class BoundedServer(uvicorn.Server):
    """uvicorn's server whose stop is bounded by the grace (``config.timeout_graceful_shutdown``)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.worker = config.workers > 1  # a worker of the supervisor: repeats are not a second signal
        self.stopped_by: int | None = None
        self.cancelled: set[asyncio.Task[Any]] = set()
        self._cancel_now = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        self._loop = asyncio.get_running_loop()  # entered in ``serve``, on the loop
        before = {sig: signal.signal(sig, self._handle) for sig in (*_STOPS, signal.SIGALRM, AT_ONCE)}
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for sig, handler in before.items():
                signal.signal(sig, handler)

    def _handle(self, sig: int, frame: FrameType | None) -> None:
        """Runs on the main thread between two bytecodes, the event loop busy or not."""
        if sig in _STOPS and not self.should_exit:
            self.should_exit = True
            self.stopped_by = sig
            signal.setitimer(signal.ITIMER_REAL, float(self.config.timeout_graceful_shutdown or 0))
        elif sig == signal.SIGALRM or sig == AT_ONCE or not self.worker:
            self.should_exit = True
            self.stopped_by = self.stopped_by or signal.SIGTERM
            self._cancel()

    def _cancel(self) -> None:
        """Cancel the requests still running, as ``asyncio.Runner`` cancels its task on Ctrl-C."""
        self._cancel_now = True
        for task in list(self.server_state.tasks):
            if task not in self.cancelled and task.cancel():
                self.cancelled.add(task)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: None)  # wake the loop to run them

    def status(self) -> int:
        """0, or 128 + the signal that stopped the server when requests had to be cancelled."""
        return 128 + self.stopped_by if self.cancelled and self.stopped_by else 0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        logging.getLogger("uvicorn.error").info("Shutting down")
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        if self.server_state.tasks:
            log.info(
                "stopping: the requests under way have %s s to finish (FHIR_CM_SHUTDOWN_GRACE); "
                "signal again to stop them at once",
                self.config.timeout_graceful_shutdown,
            )
        while self.server_state.tasks:  # cancelled ones included: they wind down (claims given back)
            if self._cancel_now:
                self._cancel()  # one that began meanwhile (a request pipelined on its connection)
            await asyncio.sleep(0.05)
        if self.cancelled:
            log.warning("stopped: %d request(s) cancelled (the grace over, or told again)", len(self.cancelled))
        signal.setitimer(signal.ITIMER_REAL, 0)
        await self.lifespan.shutdown()


class _Worker(multiprocess.Process):
    """A ``--workers`` process running the bounded server (pickled, with its config, to the child)."""

    @property
    def server(self) -> BoundedServer:
        if not isinstance(self._server, BoundedServer):
            self._server = BoundedServer(self.config)
        return self._server

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        super().target(sockets)
        sys.exit(self.server.status())


class _Supervisor(multiprocess.Multiprocess):
    """uvicorn's supervisor, which passes a later signal on to its workers as "at once"."""

    stops = 0

    def handle_int(self) -> None:
        self.stops += 1
        super().handle_int()

    def handle_term(self) -> None:
        self.stops += 1
        super().handle_term()

    def join_all(self) -> None:
        told = False
        while any(p.process.is_alive() for p in self.processes):
            self.handle_signals()
            if self.stops > 1 and not told:
                told = True
                for p in self.processes:
                    if p.pid is not None and p.process.is_alive():
                        os.kill(p.pid, AT_ONCE)
            for p in self.processes:
                p.process.join(0.1)


def run(application: Any, options: dict[str, Any], *, workers: int, grace: float) -> int:
    """Serve ``application`` (or, with ``workers`` > 1, the factory it names) until stopped; the
    exit status: 0, or 128 + the signal when requests had to be cancelled (see the module docstring)."""
    config = uvicorn.Config(application, workers=workers, timeout_graceful_shutdown=grace, **options)  # type: ignore[arg-type]
    if workers == 1:
        config.load_app()
        server = BoundedServer(config)
        server.run()
        return server.status() if server.started else STARTUP_FAILURE
    sock = config.bind_socket()
    supervisor = _Supervisor(config, sockets=[sock])
    # uvicorn's supervisor makes its workers by this module-level name (at start, and when one dies).
    made, multiprocess.Process = multiprocess.Process, _Worker  # type: ignore[misc]
    try:
        supervisor.run()
    finally:
        multiprocess.Process = made  # type: ignore[misc]
    stopped = [p.exitcode for p in supervisor.processes if p.exitcode in (128 + signal.SIGINT, 128 + signal.SIGTERM)]
    return stopped[0] if stopped else 0
