"""`fhir-cm worker` told to stop (SIGTERM, as a service manager or a container runtime does) mid-round."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import OutboxStatus, Store, get_case, held_leases, list_outbox, open_store, save_case
from fhir_cm.synthetic import generate_cases
from tests.gate import Gate
from tests.servers import sekmet_server
from tests.sync.server_state import expected, server_state

pytestmark = pytest.mark.server

N = 40
#: How long the worker may take to start and push its first case, or to stop (bounds, not expectations).
BOUND_SECONDS = 120.0


WORKER = [sys.executable, "-c", "from fhir_cm.cli import main; main()", "worker"]


def _env(url: str, base: str, system: str, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "FHIR_CM_DATABASE_URL": url,
        "FHIR_CM_FHIR_BASE": base,
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        **more,
    }


def _saved(store: Store, cases: list[Case]) -> None:
    with store.session() as s:
        for case in cases:
            save_case(s, case)


def _once(env: dict[str, str]) -> None:
    """``fhir-cm worker --once``, which must succeed."""
    again = subprocess.run([*WORKER, "--once"], env=env, capture_output=True, text=True, timeout=BOUND_SECONDS * 2)
    assert again.returncode == 0, again.stderr


def _done(store: Store) -> int:
    with store.session(read_only=True) as s:
        return sum(r.status is OutboxStatus.DONE for r in list_outbox(s))


def test_a_worker_told_to_stop_finishes_the_case_in_flight_gives_the_rest_back_and_exits_0(
    tmp_path: Path, fhir_server: str, system: str
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    cases = list(generate_cases(N, seed=41))
    env = _env(url, fhir_server, system, FHIR_CM_PUSH_CONCURRENCY="1")
    with open_store(url) as store:
        _saved(store, cases)
        worker = subprocess.Popen(WORKER, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + BOUND_SECONDS
            while not _done(store):  # the first case is on the server: the worker is mid-round
                assert worker.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=BOUND_SECONDS)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

        assert worker.returncode == 0, stderr
        with store.session(read_only=True) as s:
            rows = list_outbox(s)
        # It pushed the whole outbox (and pulled) before it stopped; a container runtime kills
        # it long before that.
        done = [r for r in rows if r.status is OutboxStatus.DONE]
        assert 0 < len(done) < N
        # What it had claimed but not started is given back untried, not held until the lease ends.
        waiting = [r for r in rows if r.status is not OutboxStatus.DONE]
        assert {r.status for r in waiting} == {OutboxStatus.PENDING}
        assert all(r.lease_expires_at is None and r.attempts == 0 for r in waiting)

    # Started again, it pushes the rest: every case on the server once, nothing twice (with the
    # follow-ups its tracker adds for discharges: the cases as the store holds them now).
    _once(env)

    async def state() -> dict[str, int]:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            return (await server_state(raw, system)).counts

    with open_store(url) as store, store.session(read_only=True) as s:
        now = [get_case(s, case.id) for case in cases]
    assert asyncio.run(state()) == expected([c for c in now if c is not None], system)


def test_a_worker_told_twice_stops_at_once_and_gives_its_claims_back(tmp_path: Path) -> None:
    """Told once, a worker finishes the cases in flight, as long as the server takes to answer (its
    timeouts and retries: a minute and more, past a service manager's patience). A second signal
    stopped nothing; it now stops the worker at once, every claim given back."""
    held = Gate("fhir", method="POST")  # the push's first batch or transaction
    system = "urn:fhir-cm:test:worker-twice"
    url = f"sqlite:///{tmp_path / 'store.db'}"
    cases = list(generate_cases(8, seed=43))
    with sekmet_server(tmp_path / "sekmet", wrap=held.wrapping) as server, open_store(url) as store:
        env = _env(url, server.base_url, system)
        _saved(store, cases)
        worker = subprocess.Popen(WORKER, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert held.seen.wait(BOUND_SECONDS), "the worker never sent its push"
            worker.send_signal(signal.SIGTERM)
            assert worker.stderr is not None
            first = worker.stderr.readline()  # the worker heard it: a second signal is a second one
            assert first.startswith("fhir-cm: worker stopping: finishing the cases in flight"), first
            worker.send_signal(signal.SIGTERM)
            stderr = first + worker.communicate(timeout=BOUND_SECONDS)[1]  # the held request still held
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            held.release.set()

        assert worker.returncode == 143, stderr
        assert "Traceback" not in stderr and stderr.endswith("fhir-cm: worker stopped at once (SIGTERM)\n"), stderr
        with store.session(read_only=True) as s:
            assert held_leases(s) == []
            assert {r.status for r in list_outbox(s)} == {OutboxStatus.PENDING}

        _once(env)
        with store.session(read_only=True) as s:
            assert {r.status for r in list_outbox(s)} == {OutboxStatus.DONE}
