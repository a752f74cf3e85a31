"""`fhir-cm serve --workers N` on PostgreSQL: N processes answer on one port, all on the same store."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from fhir_cm.store import ApiRole, create_api_key, open_store
from tests.api_process import ApiProcess
from tests.pg import temporary_database

pytestmark = pytest.mark.postgres
STARTUP_SECONDS = 90


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
        api = ApiProcess(url, args=["--workers", "2"])
        api.start()
        assert api.proc is not None
        proc, base = api.proc, api.base
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while len(_children(proc.pid)) < 2 or httpx.get(f"{base}/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.3)
            assert len(_children(proc.pid)) == 2
            headers = {"X-API-Key": key}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for i in range(20):  # on fresh connections, so both workers take some
                    body = {
                        "id": f"case-{i}",
                        "programme": "health-care",
                        "patient": {"kind": "patient", "id": f"pat-{i}"},
                        "case_manager": {"kind": "practitioner", "id": "cm-1"},
                    }
                    assert client.post("/api/v1/cases", json=body, headers={"Connection": "close"}).status_code == 201
                listed = client.get("/api/v1/cases", params={"limit": 100}).json()
                caseload = client.get("/api/v1/caseload").json()
            assert sorted(c["case"]["id"] for c in listed["items"]) == sorted(f"case-{i}" for i in range(20))
            assert [m["open_cases"] for m in caseload["managers"]] == [20]
        finally:
            api.stop()
