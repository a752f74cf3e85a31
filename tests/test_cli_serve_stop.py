"""`fhir-cm serve` stopped as a service manager stops it (SIGTERM), with requests under way: on
SQLite, and on PostgreSQL with ``--workers 2`` (the supervisor stops its workers, which finish theirs).

Each request is held where the test can see it: the test locks the store's audit log against writes,
so a read waits to commit its audit row and a create to commit its case; a create's body is sent only
in part. The signal is sent once the server has taken in every byte sent (the kernel's receive
queue of its sockets empty), so the requests are the server's whatever the machine's pace."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fhir_cm.store import ApiRole, create_api_key, list_audit, open_store
from tests.api_process import ApiProcess
from tests.pg import temporary_database

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads the kernel's socket queues in /proc")

#: How long the server may take to start, take in a request or stop (bounds, not expectations).
BOUND_SECONDS = 60.0
CASE = {
    "programme": "health-care",
    "patient": {"kind": "patient", "id": "pat-1"},
    "case_manager": {"kind": "practitioner", "id": "cm-1"},
}


def _taken_in(port: int, client: socket.socket) -> bool:
    """Whether the server's end of ``client``'s connection has nothing left unread in its queue."""
    peer = client.getsockname()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == peer:
            return int(queues.split(":")[1], 16) == 0
    return False


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _commands(pids: set[int]) -> dict[int, str]:
    """Each process's command line, by pid (one that has already gone: empty)."""
    found = {}
    for pid in pids:
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except FileNotFoundError:
            found[pid] = ""
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *fields = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return int(status.split()[1]), headers, body


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[tuple[str, Callable[[], Callable[[], None]]]]:
    path = tmp_path / "serve.db"

    def lock() -> Callable[[], None]:
        held = sqlite3.connect(path, isolation_level=None)
        held.execute("BEGIN IMMEDIATE")  # every write of the server waits (its busy timeout is 30 s)
        return lambda: held.execute("COMMIT") and None

    yield f"sqlite:///{path}", lock


@contextmanager
def _postgres(tmp_path: Path) -> Iterator[tuple[str, Callable[[], Callable[[], None]]]]:
    import psycopg
    from sqlalchemy.engine import make_url

    with temporary_database() as url:
        where = make_url(url)

        def lock() -> Callable[[], None]:
            held = psycopg.connect(host=where.host, port=where.port, user=where.username, dbname=where.database)
            held.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")  # reads go on, writes of it wait
            return held.commit

        yield url, lock


@pytest.mark.parametrize(
    ("store", "args"),
    [
        pytest.param(_sqlite, [], id="sqlite"),
        pytest.param(_postgres, ["--workers", "2"], id="postgres-workers", marks=pytest.mark.postgres),
    ],
)
def test_sigterm_lets_the_requests_under_way_finish_with_their_audit_rows_and_exits_0(
    tmp_path: Path, store: Callable[[Path], object], args: list[str]
) -> None:
    with store(tmp_path) as (url, lock):  # type: ignore[attr-defined]
        _stop_with_requests_under_way(url, lock, args)


def _stop_with_requests_under_way(url: str, lock: Callable[[], Callable[[], None]], args: list[str]) -> None:
    with open_store(url) as store, store.session() as s:
        _, key = create_api_key(s, name="t", role=ApiRole.SUPERVISOR)
    api = ApiProcess(url, args=args)
    api.start()
    assert api.proc is not None
    proc = api.proc
    try:
        case_id = httpx.post(f"{api.base}/api/v1/cases", json=CASE, headers={"X-API-Key": key}, timeout=30).json()[
            "case"
        ]["id"]
        release = lock()
        reading = socket.create_connection(("127.0.0.1", api.port), timeout=BOUND_SECONDS)
        reading.sendall(
            f"GET /api/v1/cases/{case_id} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n".encode()
        )
        body = json.dumps({**CASE, "patient": {"kind": "patient", "id": "pat-2"}}).encode()
        creating = socket.create_connection(("127.0.0.1", api.port), timeout=BOUND_SECONDS)
        creating.sendall(
            b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {key}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body[:10]
        )
        _wait(lambda: _taken_in(api.port, reading) and _taken_in(api.port, creating), "the requests were not taken in")

        helpers = _commands(_children(proc.pid))  # with --workers, uvicorn's workers (and multiprocessing's tracker)
        proc.send_signal(signal.SIGTERM)
        _wait(lambda: '"Shutting down"' in api.said(), "no shutdown began")
        creating.sendall(body[10:])
        release()
        read_status, read_headers, _ = _answer(reading)
        create_status, _, created = _answer(creating)
        code = proc.wait(timeout=BOUND_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert (read_status, create_status, code) == (200, 201, 0), api.said()
    assert "Traceback" not in api.said()
    # uvicorn joins its workers before it exits: none may outlive it. multiprocessing's resource tracker
    # is not joined: it exits when it reads the end of its pipe, just after the server has exited.
    trackers = {pid for pid, command in helpers.items() if "resource_tracker" in command}
    assert [pid for pid in helpers.keys() - trackers if _alive(pid)] == []
    _wait(lambda: not any(_alive(pid) for pid in trackers), "multiprocessing's resource tracker outlived the server")
    new_id = json.loads(created)["case"]["id"]
    with open_store(url) as store, store.session(read_only=True) as s:
        audited = {(e.action, e.case_id, e.request_id) for e in list_audit(s, limit=None)}
    assert ("read", case_id, read_headers["x-request-id"]) in audited
    assert ("create", new_id) in {(action, case) for action, case, _ in audited}
