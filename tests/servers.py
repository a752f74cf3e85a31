"""Real FHIR servers for integration tests, started in-process.

sekmet-fhir (pinned in the ``test`` extra) is a tolerant R4 server on SQLite. It is served by a
``uvicorn.Server`` on a socket the test binds itself (port 0, so no race for a "free" port), in a
background thread, and is declared ready only once ``/metadata`` answers — never after a blind
sleep. Its known gaps are pinned by the canary in ``tests/fhir/test_server_canary.py``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

__all__ = ["RunningServer", "sekmet_server"]

STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class RunningServer:
    """A started server: its FHIR base URL, its root URL and the sekmet settings it runs with."""

    base_url: str
    root_url: str
    settings: Any


def _bind_localhost() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _wait_ready(metadata_url: str, thread: threading.Thread) -> None:
    """Poll /metadata until it answers 200; fail fast if the server thread died."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not thread.is_alive():
                raise RuntimeError("the FHIR server thread exited during startup")
            try:
                response = client.get(metadata_url, headers={"Accept": "application/fhir+json"})
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last_error = type(exc).__name__
            time.sleep(0.05)  # polling interval between readiness probes, not synchronisation
    raise RuntimeError(f"the FHIR server did not become ready in {STARTUP_TIMEOUT}s ({last_error})")


@contextmanager
def sekmet_server(
    workdir: Path, *, wrap: Callable[[Any], Any] | None = None, **overrides: Any
) -> Iterator[RunningServer]:
    """Run sekmet-fhir on 127.0.0.1 (in-memory store, simulator and traffic log off) for the block.

    ``overrides`` are extra ``sekmet.config.Settings`` fields, e.g. ``server_auth`` for a SMART server;
    ``wrap`` puts an ASGI middleware in front of it (e.g. :class:`tests.token_gate.TokenGate`).
    """
    from sekmet.config import Settings, SimulatorSettings
    from sekmet.main import create_app

    sock = _bind_localhost()
    port = sock.getsockname()[1]
    root = f"http://127.0.0.1:{port}"
    settings = Settings(
        base_url=f"{root}/fhir",
        host="127.0.0.1",
        port=port,
        data_dir=str(workdir / "data"),
        db_path=":memory:",
        own_private_key_path=str(workdir / "keys" / "sekmet_private.pem"),
        simulator=SimulatorSettings(enabled=False),
        log_inbound=False,
        **overrides,
    )
    root_logger = logging.getLogger()
    level, handlers = root_logger.level, list(root_logger.handlers)
    app = create_app(settings)  # calls logging.basicConfig(INFO): undo that for the test run
    root_logger.setLevel(level)
    for handler in root_logger.handlers[:]:
        if handler not in handlers:
            root_logger.removeHandler(handler)
    logging.getLogger("sekmet").setLevel(logging.WARNING)
    if wrap is not None:
        app = wrap(app)

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sekmet-{port}", daemon=True)
    thread.start()
    try:
        _wait_ready(f"{root}/fhir/metadata", thread)
        yield RunningServer(base_url=f"{root}/fhir", root_url=root, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
