"""`fhir-cm serve --workers N`: N processes answer on one port, all on the same store — PostgreSQL, or the
embedded SQLite file, whose writers take turns across processes (WAL, a busy timeout)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fhir_cm.store import ApiRole, create_api_key, open_store
from tests.api_process import ApiProcess
from tests.pg import temporary_database

STARTUP_SECONDS = 90
CASES = 40


def _children(pid: int) -> set[int]:
    """Process ids of uvicorn's workers under its supervisor ``pid`` (not multiprocessing's helpers)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"spawn_main" in command:
                found.add(int(child))
    return found


@contextmanager
def _store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        with temporary_database() as url:
            yield str(url)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_workers_serve_one_store(kind: str, tmp_path: Path) -> None:
    with _store_url(kind, tmp_path) as url:
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

            def create(i: int) -> int:
                body = {
                    "id": f"case-{i}",
                    "programme": "health-care",
                    "patient": {"kind": "patient", "id": f"pat-{i}"},
                    "case_manager": {"kind": "practitioner", "id": "cm-1"},
                }
                # A connection each, so both workers take some; eight at once, so their writes overlap.
                with httpx.Client(base_url=base, headers=headers, timeout=30) as one:
                    response = one.post("/api/v1/cases", json=body)
                    return response.status_code

            with ThreadPoolExecutor(8) as pool:
                assert list(pool.map(create, range(CASES))) == [201] * CASES
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                listed = client.get("/api/v1/cases", params={"limit": 100}).json()
                caseload = client.get("/api/v1/caseload").json()
            assert sorted(c["case"]["id"] for c in listed["items"]) == sorted(f"case-{i}" for i in range(CASES))
            assert [m["open_cases"] for m in caseload["managers"]] == [CASES]
        finally:
            api.stop()
