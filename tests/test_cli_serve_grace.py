"""`fhir-cm serve` told to stop while a request runs longer than its grace (``FHIR_CM_SHUTDOWN_GRACE``):
an API-triggered pull held by a gate in front of a real server (sekmet, in this process) that never
lets its Goal search go. The stop is bounded — by the grace, or at once by a second signal — where it
waited for the pull as long as it took (past a service manager's grace, into its SIGKILL), and the
pull cancelled has merged nothing and moved no watermark, so the next pull reads it all again."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import (
    ApiRole,
    OutboxStatus,
    create_api_key,
    list_cases,
    list_outbox,
    list_watermarks,
    open_store,
)
from fhir_cm.synthetic import generate_cases
from tests.api_process import ApiProcess
from tests.gate import Gate
from tests.pg import temporary_database
from tests.servers import sekmet_server
from tests.sync.seeding import seed_case

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as a service manager sends them")

#: How long the server may take to start or to stop (bounds, not expectations): the gate holds the
#: pull for ever, so a stop waiting for it never comes within them.
BOUND_SECONDS = 60.0
SYSTEM = "urn:fhir-cm:test:grace"
CASE = {
    "programme": "health-care",
    "patient": {"kind": "patient", "id": "pat-1"},
    "case_manager": {"kind": "practitioner", "id": "cm-1"},
}


@contextmanager
def _sqlite(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'serve.db'}"


@contextmanager
def _postgres(tmp_path: Path) -> Iterator[str]:
    with temporary_database() as url:
        yield url


STORES = [
    pytest.param(_sqlite, [], id="sqlite"),
    pytest.param(_postgres, ["--workers", "2"], id="postgres-workers", marks=pytest.mark.postgres),
]
#: The grace (``FHIR_CM_SHUTDOWN_GRACE``) and how many SIGTERMs: the grace ends, or a second signal
#: comes with a grace of an hour.
STOPS = [pytest.param("1", 1, id="grace-ends"), pytest.param("3600", 2, id="second-signal")]


@dataclass
class Stopped:
    """How a serve stopped mid-request ended: its exit status, its log, the client's answer."""

    code: int
    said: str
    answer: httpx.Response | Exception


@pytest.mark.parametrize(("store", "args"), STORES)
@pytest.mark.parametrize(("grace", "signals"), STOPS)
def test_a_stop_while_an_api_pull_runs_ends_within_the_grace_or_at_a_second_signal_merging_nothing(
    tmp_path: Path, store: Callable[[Path], AbstractContextManager[str]], args: list[str], grace: str, signals: int
) -> None:
    held = Gate("Goal")
    with sekmet_server(tmp_path / "sekmet", wrap=held.wrapping) as server, store(tmp_path) as url:
        _seed(server.base_url)
        stopped = _stop_mid_request(url, server.base_url, held, "pull", args, grace, signals, lambda _api, _key: None)
        with open_store(url) as s, s.session(read_only=True) as session:
            cases, watermarks = list_cases(session), list_watermarks(session)
    _assert_stopped(stopped)
    assert (cases, watermarks) == ([], [])


@pytest.mark.parametrize(("store", "args"), STORES)
@pytest.mark.parametrize(("grace", "signals"), STOPS)
def test_a_stop_while_an_api_push_waits_on_the_server_gives_its_claims_back(
    tmp_path: Path, store: Callable[[Path], AbstractContextManager[str]], args: list[str], grace: str, signals: int
) -> None:
    held = Gate("fhir", method="POST")  # the push's transaction
    created: list[str] = []

    def create(api: ApiProcess, key: str) -> None:
        answer = httpx.post(f"{api.base}/api/v1/cases", json=CASE, headers={"X-API-Key": key}, timeout=BOUND_SECONDS)
        created.append(answer.raise_for_status().json()["case"]["id"])

    with sekmet_server(tmp_path / "sekmet", wrap=held.wrapping) as server, store(tmp_path) as url:
        stopped = _stop_mid_request(url, server.base_url, held, "push", args, grace, signals, create)
        with open_store(url) as s, s.session(read_only=True) as session:
            outbox = [(row.case_id, row.status, row.claim_token, row.attempts) for row in list_outbox(session)]
    _assert_stopped(stopped)
    assert outbox == [(created[0], OutboxStatus.PENDING, None, 0)]  # untried, for the next push at once


def _stop_mid_request(
    url: str,
    base: str,
    held: Gate,
    operation: str,
    args: list[str],
    grace: str,
    signals: int,
    prepare: Callable[[ApiProcess, str], None],
) -> Stopped:
    """Start serve on ``url`` syncing with ``base``, ``prepare`` it, trigger ``operation`` and, once the
    gate holds it, send SIGTERM ``signals`` times; wait for the process to end (the gate never opens)."""
    with open_store(url) as s, s.session() as session:
        _, key = create_api_key(session, name="t", role=ApiRole.SUPERVISOR)
    api = ApiProcess(url, env={"FHIR_CM_SHUTDOWN_GRACE": grace, "FHIR_CM_IDENTIFIER_SYSTEM": SYSTEM}, args=args)
    api.env["FHIR_CM_FHIR_BASE"] = base
    answered: list[httpx.Response | Exception] = []
    try:
        api.start()
        assert api.proc is not None
        proc = api.proc
        try:
            prepare(api, key)
            syncing = threading.Thread(target=_trigger, args=(api.base, operation, key, answered))
            syncing.start()
            assert held.seen.wait(BOUND_SECONDS), f"the {operation} never reached the gate"
            for _ in range(signals):
                proc.send_signal(signal.SIGTERM)
                if signals > 1:  # the second once the first is taken: the stop has begun
                    _wait_for(lambda: '"Shutting down"' in api.said())
            code = proc.wait(timeout=BOUND_SECONDS)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        syncing.join(BOUND_SECONDS)
    finally:
        held.release.set()
    (answer,) = answered
    return Stopped(code, api.said(), answer)


def _assert_stopped(stopped: Stopped) -> None:
    assert stopped.code == 143, stopped.said
    assert "request(s) cancelled" in stopped.said
    assert "Traceback" not in stopped.said
    # The client is told to come back (its request cancelled), where it got uvicorn's bare 500.
    assert isinstance(stopped.answer, httpx.Response), stopped.answer
    assert (stopped.answer.status_code, stopped.answer.headers["content-type"]) == (503, "application/problem+json")
    assert stopped.answer.json()["type"] == "urn:fhir-cm:problem:stopping"


def _seed(base: str) -> None:
    async def seed() -> None:
        async with AsyncFhirClient(base, enforce_capabilities=False) as raw:
            for case in generate_cases(3, seed=4711):
                await seed_case(raw, case, SYSTEM)

    asyncio.run(seed())


def _trigger(base: str, operation: str, key: str, answered: list[httpx.Response | Exception]) -> None:
    try:
        url = f"{base}/api/v1/sync/{operation}"
        answered.append(httpx.post(url, headers={"X-API-Key": key}, timeout=BOUND_SECONDS))
    except Exception as exc:  # the connection closed under it: what a client of a stopped server sees
        answered.append(exc)


def _wait_for(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(int(BOUND_SECONDS / 0.05)):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError("the server did not begin to stop")
