"""Test FHIR servers run as processes of their own (HAPI in a JVM, the in-memory server in Python):
start-up, readiness and stop, shared by their launchers.

Each server prints ``READY <base url>`` on its standard output once it accepts connections and stops
when its standard input closes, so a killed test run never leaves one behind.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

__all__ = ["drain", "run_server", "stop", "wait_for_metadata", "wait_for_ready_line"]


@contextmanager
def run_server(
    command: Sequence[str], *, what: str, timeout: float, cwd: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Start ``command``, wait for its ``READY`` line and its ``/metadata``; ``(base URL, pid)`` for the block."""
    process = subprocess.Popen(
        list(command), cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    errors: list[str] = []
    assert process.stderr is not None
    threading.Thread(target=drain, args=(process.stderr, errors), daemon=True).start()
    try:
        base_url = wait_for_ready_line(process, errors, what, timeout)
        wait_for_metadata(base_url, process, what, timeout)
        yield base_url, process.pid
    finally:
        stop(process)


def drain(stream: IO[str], sink: list[str]) -> None:
    """Keep a server's stderr flowing (a full pipe would block it); keep the last lines for errors."""
    for line in stream:
        sink.append(line.rstrip())
        del sink[:-40]


def wait_for_ready_line(process: subprocess.Popen[str], errors: list[str], what: str, timeout: float) -> str:
    """The base URL the server printed on its ``READY`` line; an error with its last stderr lines if none came."""
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("READY "):
                found.append(line.split()[1])
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if found:
        return found[0]
    state = f"exited with {process.poll()}" if process.poll() is not None else f"not ready in {timeout:.0f}s"
    tail = "\n".join(errors[-15:])
    raise RuntimeError(f"{what} {state}:\n{tail}")


def wait_for_metadata(base_url: str, process: subprocess.Popen[str], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=30.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}")
            try:
                if client.get(f"{base_url}/metadata", headers={"Accept": "application/fhir+json"}).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling interval between readiness probes, not synchronisation
    raise RuntimeError(f"{what} did not answer /metadata in {timeout:.0f}s")


def stop(process: subprocess.Popen[str]) -> None:
    """Close the server's stdin (it stops on its own); kill it if it has not stopped in 20 s."""
    if process.poll() is None:
        try:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(timeout=10)
