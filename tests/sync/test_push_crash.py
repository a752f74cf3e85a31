"""Crash and resume: a real `fhir-cm push` process is SIGKILLed mid-push, then run again — after
its lease ended, and at once (the re-run takes the dead process's rows over)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import OutboxStatus, held_leases, list_outbox, open_store, save_case
from fhir_cm.store._types import utcnow
from fhir_cm.synthetic import generate_cases
from tests.sync.server_state import ServerState, expected, server_state

pytestmark = [pytest.mark.server, pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")]

N = 20
DEADLINE = 60.0


def fhir_cm() -> list[str]:
    exe = shutil.which("fhir-cm", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "fhir_cm.cli"]


async def inspect(base: str, system: str) -> ServerState:
    async with AsyncFhirClient(base, enforce_capabilities=False) as raw:
        return await server_state(raw, system)


def episodes_on_server(base: str, system: str) -> int:
    answer = httpx.get(f"{base}/EpisodeOfCare", params={"identifier": f"{system}|", "_count": 200})
    bundle = answer.json()
    return sum(
        1
        for e in bundle.get("entry") or ()
        if any(i.get("system") == system for i in e["resource"].get("identifier") or ())
    )


def test_a_push_killed_mid_way_and_run_again_ends_with_exactly_the_right_resources(
    settings: Settings, fhir_server: str, system: str
) -> None:
    cases = list(generate_cases(N, seed=909))
    with open_store(settings.database_url) as store, store.session() as s:
        for case in cases:
            save_case(s, case)
    env = {
        **os.environ,
        "FHIR_CM_DATABASE_URL": settings.database_url,
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "FHIR_CM_PUSH_LEASE_SECONDS": "1",
        "FHIR_CM_PUSH_BATCH_SIZE": "1",
        "FHIR_CM_PUSH_CONCURRENCY": "1",
    }
    command = [*fhir_cm(), "push", "--all", "--fhir-base", fhir_server]

    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + DEADLINE
    while episodes_on_server(fhir_server, system) == 0 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the server for the first case to land
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL, "the push finished before it could be killed"

    with open_store(settings.database_url) as store:
        with store.session(read_only=True) as s:
            rows = list_outbox(s)
        assert any(r.status is not OutboxStatus.DONE for r in rows)
        while time.monotonic() < deadline:  # until the dead process's lease is over
            with store.session(read_only=True) as s:
                held = [
                    r
                    for r in list_outbox(s, status=OutboxStatus.IN_FLIGHT)
                    if r.lease_expires_at and r.lease_expires_at >= utcnow()
                ]
            if not held:
                break
            time.sleep(0.05)

    again = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=DEADLINE)

    assert again.returncode == 0, again.stderr
    with open_store(settings.database_url) as store, store.session(read_only=True) as s:
        assert {r.status for r in list_outbox(s)} == {OutboxStatus.DONE}
    state = asyncio.run(inspect(fhir_server, system))
    assert state.counts == expected(cases, system)
    assert state.dangling() == []


def test_a_killed_push_run_again_at_once_takes_over_the_dead_ones_rows_and_pushes_every_case(
    settings: Settings, fhir_server: str, system: str, tmp_path: Path
) -> None:
    """The bug: the re-run reported success with the dead process's claimed cases left out, held
    for the rest of a 60 s lease. Now the re-run sees the holder is a dead process of this host and
    takes its rows over at once: no waiting for the lease, every case of the file pushed."""
    cases = list(generate_cases(N, seed=919))
    file = tmp_path / "cases.jsonl"
    file.write_text("".join(c.model_dump_json() + "\n" for c in cases))
    env = {
        **os.environ,
        "FHIR_CM_DATABASE_URL": settings.database_url,
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "FHIR_CM_PUSH_LEASE_SECONDS": "60",
        "FHIR_CM_PUSH_BATCH_SIZE": "10",
        "FHIR_CM_PUSH_CONCURRENCY": "1",
    }
    command = [*fhir_cm(), "push", str(file), "--fhir-base", fhir_server]

    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + DEADLINE
    while episodes_on_server(fhir_server, system) == 0 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert victim.returncode == -signal.SIGKILL, "the push finished before it could be killed"
    with open_store(settings.database_url) as store, store.session(read_only=True) as s:
        held = held_leases(s)
    # What made the old re-run skip cases: rows the dead process holds, for most of a minute yet.
    assert held and all(r.holder is not None and r.holder.pid == victim.pid for r in held)
    assert min(r.lease_expires_at for r in held if r.lease_expires_at) > utcnow() + dt.timedelta(seconds=30)

    # --no-wait: without the takeover the re-run would wait out the dead one's lease (or, before,
    # skip its cases); this way it fails at once with "10 of 20 cases pushed" and exit 75.
    again = subprocess.run(
        [*command, "--json", "--no-wait"], check=False, env=env, capture_output=True, text=True, timeout=DEADLINE
    )

    assert again.returncode == 0, again.stderr
    assert f"{N} of {N} cases pushed" in again.stderr
    summary = json.loads(again.stdout)
    assert (summary["asked"], summary["pushed"], summary["not_pushed"]) == (N, N, [])
    with open_store(settings.database_url) as store, store.session(read_only=True) as s:
        rows = list_outbox(s)
    assert {r.status for r in rows} == {OutboxStatus.DONE}
    assert {r.case_id for r in rows} == {c.id for c in cases}
    assert {r.claimed_by for r in rows if r.case_id in {h.case_id for h in held}}.isdisjoint(
        {f"{socket.gethostname()}:{victim.pid}"}
    )
    state = asyncio.run(inspect(fhir_server, system))
    assert state.counts == expected(cases, system)
    assert state.dangling() == []
