"""``fhir-cm serve`` in a process of its own, as a user runs it, for tests that need the real thing:
the console in a browser, a FHIR server delivering notifications, several workers on one port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

import httpx

__all__ = ["ApiProcess"]

STARTUP_SECONDS = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ApiProcess:
    """The API on the store ``database_url`` names, on a port that stays the same across a restart
    (subscriptions name it). ``start`` returns once ``/healthz`` answers; ``stop`` ends the process."""

    def __init__(self, database_url: str, *, env: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.notifications = f"{self.base}/notifications"
        # No FHIR server the test runner's environment may name; one a test names in ``env`` is kept.
        outside = {k: v for k, v in os.environ.items() if k != "FHIR_CM_FHIR_BASE"}
        self.env = {**outside, "FHIR_CM_DATABASE_URL": database_url, **(env or {})}
        self.args = list(args)
        self.proc: subprocess.Popen[str] | None = None
        # Its log goes to a file, read when it fails to start: a pipe nobody drains fills (64 kB, some
        # 230 requests of the access log) and the server then hangs on its next log line.
        self.log = tempfile.TemporaryFile(mode="w+", prefix="fhir-cm-serve-")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from fhir_cm.cli import main; main()",
                "serve",
                "--port",
                str(self.port),
                *self.args,
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            text=True,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise AssertionError(f"the API exited: {self.log.read()}")
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)

    def said(self) -> str:
        """What the server has logged so far (read without moving the offset the server writes at)."""
        fd = self.log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None
