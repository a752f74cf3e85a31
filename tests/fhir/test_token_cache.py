"""One SMART token per process while it is valid, whatever the clients, threads and event loops.

Each client built from the settings fetched its own token (and discovered the token endpoint): the
API builds one per push or placement, the worker its own, so a busy ``serve`` asked the hospital's
token endpoint for a token per request and got throttled. A real token endpoint (sekmet-fhir's)
behind a gate counting what it is asked judges it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import Unauthorized, client_from_settings
from fhir_cm.fhir._tokens import SHARED_TOKENS
from tests.servers import RunningServer
from tests.token_gate import TokenGate, gated_settings, gated_smart_server

pytestmark = pytest.mark.server

THREADS, CLIENTS = 3, 4  # each thread runs its own event loop, with CLIENTS clients at once


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, TokenGate, Path]]:
    with gated_smart_server(tmp_path_factory.mktemp("gated-smart")) as served:
        yield served


@pytest.fixture
def settings(gated: tuple[RunningServer, TokenGate, Path]) -> Settings:
    server, gate, key = gated
    gate.reset()
    return gated_settings(server, key)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def _clients_at_once(settings: Settings) -> None:
    async def one() -> None:
        async with client_from_settings(settings) as fhir:
            await fhir.search("Patient").first()

    await asyncio.gather(*(one() for _ in range(CLIENTS)))


def _from_threads(settings: Settings) -> None:
    """CLIENTS clients at once in each of THREADS threads, each thread on an event loop of its own
    (as the API runs sync jobs); an error in any of them is raised here."""
    with ThreadPoolExecutor(THREADS) as pool:
        for done in [pool.submit(asyncio.run, _clients_at_once(settings)) for _ in range(THREADS)]:
            done.result()


def test_clients_in_threads_and_event_loops_share_one_token_and_one_discovery(
    settings: Settings, gated: tuple[RunningServer, TokenGate, Path]
) -> None:
    _, gate, _ = gated

    _from_threads(settings)
    _from_threads(settings)

    assert (gate.token_requests, gate.discoveries) == (1, 1)
    assert len(gate.borne) >= 2 * THREADS * CLIENTS and len(set(gate.borne)) == 1


def test_a_token_about_to_expire_is_fetched_anew_once_for_all_clients(
    settings: Settings, gated: tuple[RunningServer, TokenGate, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, gate, _ = gated
    clock = Clock()
    monkeypatch.setattr(SHARED_TOKENS, "clock", clock)
    _from_threads(settings)

    clock.now += 3600 - 30  # sekmet's tokens last an hour: within the minute before it ends
    _from_threads(settings)

    assert (gate.token_requests, gate.discoveries) == (2, 1)
    first, *rest = gate.borne
    assert len(set(gate.borne)) == 2 and rest[-1] != first


def test_a_token_refused_with_401_is_fetched_anew_once_for_all_clients(
    settings: Settings, gated: tuple[RunningServer, TokenGate, Path]
) -> None:
    _, gate, _ = gated
    _from_threads(settings)
    gate.revoked.add(gate.borne[0])  # revoked by the hospital before it expires

    _from_threads(settings)  # every client meets the 401 at once, or takes the new token

    assert gate.token_requests == 2
    assert gate.borne[-1] != gate.borne[0] and len(set(gate.borne)) == 2


async def test_a_fresh_token_refused_too_fails_clearly_after_one_refresh(
    settings: Settings, gated: tuple[RunningServer, TokenGate, Path]
) -> None:
    _, gate, _ = gated
    async with client_from_settings(settings) as fhir:
        await fhir.search("Patient").first()
        gate.revoke_all = True  # every token refused: e.g. the client's registration withdrawn

        with pytest.raises(Unauthorized):
            await fhir.search("Patient").first()

    assert gate.token_requests == 2  # the one refused, one fresh one: no loop
