"""`fhir-cm subscribe` (or a worker's round following the open cases) stopped — SIGTERM, Ctrl-C, a
worker told to stop — while the server writes a subscription: the server makes or changes it whether
or not its answer is read, so what it now holds must be in the store too.

A wrapper in front of a real server (sekmet, in this process) holds the server's answer to the
subscription's write until the test has stopped the command, so the stop lands after the server
wrote it and before the command heard of it, whatever the machine's pace."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_cm.domain import Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, list_subscriptions, open_store, save_case
from fhir_cm.sync import sync_subscriptions, unsubscribe_all
from tests.servers import sekmet_server

pytestmark = pytest.mark.server

ENDPOINT = "http://127.0.0.1:9/notifications"
#: How long the command may take to reach the held answer (a bound, not an expectation).
BOUND_SECONDS = 60.0


class HeldAnswer:
    """Holds the server's answer to the first ``method`` of a Subscription, once the server has done it."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.seen = threading.Event()
        self.release = threading.Event()

    def wrapping(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if not (
                scope["type"] == "http"
                and scope["method"] == self.method
                and "/Subscription" in scope["path"]
                and not self.seen.is_set()
            ):
                return await app(scope, receive, send)

            async def answer(message: Any) -> None:
                if message["type"] == "http.response.start":
                    self.seen.set()
                    await asyncio.to_thread(self.release.wait)
                await send(message)

            await app(scope, receive, answer)

        return held


def _served(tmp_path: Path, method: str) -> Iterator[tuple[HeldAnswer, str]]:
    gate = HeldAnswer(method)
    with sekmet_server(tmp_path / "sekmet", wrap=gate.wrapping) as server:
        try:
            yield gate, server.base_url
        finally:
            gate.release.set()


@pytest.fixture(params=["POST", "PUT"], ids=["made", "changed"])
def held(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[HeldAnswer, str]]:
    yield from _served(tmp_path, request.param)


@pytest.fixture
def held_delete(tmp_path: Path) -> Iterator[tuple[HeldAnswer, str]]:
    yield from _served(tmp_path, "DELETE")


async def _stopped_once_written(command: asyncio.Future[Any], gate: HeldAnswer) -> None:
    """Stop ``command`` once the server has written, before it hears the answer; let it end."""
    assert await asyncio.to_thread(gate.seen.wait, BOUND_SECONDS), "the subscription was never written"
    command.cancel()  # as a stop cancels the command
    await asyncio.sleep(0)  # the cancellation delivered, the answer still held
    gate.release.set()
    await asyncio.gather(command, return_exceptions=True)


def _enrol(store: Store, patient: str) -> None:
    with store.session() as s:
        case = Case(
            id=f"case-{patient}",
            programme="health-care",
            period=Period(start=dt.date(2026, 1, 1)),
            patient=Party(kind="patient", id=patient),
        )
        save_case(s, case, enqueue=False)


async def test_a_subscription_written_as_the_command_was_stopped_is_the_one_the_store_holds(
    held: tuple[HeldAnswer, str], tmp_path: Path
) -> None:
    gate, base = held
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        _enrol(store, "pat-stop-1")
        async with AsyncFhirClient(base, enforce_capabilities=False) as client:
            if gate.method == "PUT":  # a subscription held already, changed for a new open case
                await sync_subscriptions(store, client, endpoint=ENDPOINT)
                _enrol(store, "pat-stop-2")
            await _stopped_once_written(
                asyncio.ensure_future(sync_subscriptions(store, client, endpoint=ENDPOINT)), gate
            )

            with store.session(read_only=True) as s:
                (kept,) = list_subscriptions(s, base)
        async with httpx.AsyncClient(timeout=BOUND_SECONDS) as raw:
            listed = (await raw.get(f"{base}/Subscription", headers={"Accept": "application/fhir+json"})).json()
    on_server = [entry["resource"] for entry in listed.get("entry", [])]

    assert [r["id"] for r in on_server] == [kept.server_id]
    (subscription,) = on_server
    assert subscription["criteria"] == "Encounter?patient=" + ",".join(f"Patient/{p}" for p in kept.patients)
    assert kept.patients == (["pat-stop-1"] if gate.method == "POST" else ["pat-stop-1", "pat-stop-2"])


async def test_a_subscription_deleted_as_unsubscribe_was_stopped_is_gone_from_the_store_too(
    held_delete: tuple[HeldAnswer, str], tmp_path: Path
) -> None:
    """Left in the store, a worker's next round found it gone on the server and made it again."""
    gate, base = held_delete
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        _enrol(store, "pat-stop-3")
        async with AsyncFhirClient(base, enforce_capabilities=False) as client:
            await sync_subscriptions(store, client, endpoint=ENDPOINT)
            await _stopped_once_written(asyncio.ensure_future(unsubscribe_all(store, client)), gate)

            with store.session(read_only=True) as s:
                kept = list_subscriptions(s, base)
        async with httpx.AsyncClient(timeout=BOUND_SECONDS) as raw:
            listed = (await raw.get(f"{base}/Subscription", headers={"Accept": "application/fhir+json"})).json()

    assert listed.get("entry", []) == []
    assert kept == []
