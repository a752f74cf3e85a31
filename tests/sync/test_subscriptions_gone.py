"""A subscription the server no longer holds (deleted there, or lost with a server whose database went
with a restart) is made again by the worker's next round, on a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import pytest

from fhir_cm.domain import Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient, Conflict
from fhir_cm.store import list_subscriptions, open_store, save_case
from fhir_cm.sync import check_subscriptions, sync_subscriptions

pytestmark = pytest.mark.server


async def _delete_on_server(client: AsyncFhirClient, server_id: str) -> None:
    """Delete it there, as the server's administrator would: HAPI answers 409 while it is still
    activating the subscription (writing its status), so the delete is tried again until it is done."""
    for _ in range(60):
        try:
            await client.delete("Subscription", server_id)
            return
        except Conflict:
            await asyncio.sleep(0.5)
    raise AssertionError("the server kept refusing to delete the subscription")


async def test_a_subscription_the_server_lost_is_made_again(tmp_path: Path, fhir_server: str) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        with store.session() as s:
            patient = Party(kind="patient", id=f"gone-{uuid.uuid4().hex[:12]}")
            case = Case(id="case-1", programme="health-care", period=Period(start=dt.date(2026, 1, 1)), patient=patient)
            save_case(s, case, enqueue=False)
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as client:
            await sync_subscriptions(store, client, endpoint="http://127.0.0.1:9/notifications")
            with store.session(read_only=True) as s:
                (lost,) = list_subscriptions(s, fhir_server)
            assert lost.server_id
            await _delete_on_server(client, lost.server_id)

            first = await check_subscriptions(store, client)  # the worker's round: a catch-up meanwhile
            again = await sync_subscriptions(store, client)  # the next round follows the open cases
            second = await check_subscriptions(store, client)

            with store.session(read_only=True) as s:
                (made,) = list_subscriptions(s, fhir_server)
            on_server = await client.read("Subscription", str(made.server_id))

    assert first.caught_up == 1
    assert again.created == [made.id] and made.server_id != lost.server_id
    assert on_server["criteria"] == f"Encounter?patient=Patient/{patient.id}"
    assert second.caught_up == 0  # it was queued again every round, the subscription never made again
