"""`fhir-cm serve --workers N` on PostgreSQL: N processes answer on one port, all on the same store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fhir_cm.store import ApiRole, create_api_key, open_store
from tests.pg import temporary_database

pytestmark = pytest.mark.postgres
STARTUP_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    """Process ids of uvicorn's workers under its supervisor ``pid`` (not multiprocessing's helpers)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in command:
                found.add(int(child))
    return found


def test_two_workers_serve_one_store(tmp_path: Path) -> None:
    with temporary_database() as url:
        with open_store(url) as store, store.session() as s:
            _, key = create_api_key(s, name="t", role=ApiRole.SUPERVISOR)
        port = _free_port()
        env = {**os.environ, "FHIR_CM_DATABASE_URL": url}
        env.pop("FHIR_CM_FHIR_BASE", None)
        proc = subprocess.Popen(
            [sys.executable, "-c", "from fhir_cm.cli import main; main()", "serve", "--port", str(port),
             "--workers", "2"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=5).status_code == 200 and len(_children(proc.pid)) >= 2:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else "the server exited"
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.3)
            assert len(_children(proc.pid)) == 2
            headers = {"X-API-Key": key}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for i in range(20):  # on fresh connections, so both workers take some
                    body = {"id": f"case-{i}", "programme": "health-care",
                            "patient": {"kind": "patient", "id": f"pat-{i}"},
                            "case_manager": {"kind": "practitioner", "id": "cm-1"}}
                    assert client.post("/api/v1/cases", json=body, headers={"Connection": "close"}).status_code == 201
                listed = client.get("/api/v1/cases", params={"limit": 100}).json()
                caseload = client.get("/api/v1/caseload").json()
            assert sorted(c["case"]["id"] for c in listed["items"]) == sorted(f"case-{i}" for i in range(20))
            assert [m["open_cases"] for m in caseload["managers"]] == [20]
        finally:
            proc.terminate()
            proc.wait(timeout=60)
