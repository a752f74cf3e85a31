"""Subscriptions on the real HAPI server, delivering to a real fhir-cm API over HTTP.

`subscribe` makes R4 criteria rest-hook subscriptions for the open cases' patients, which HAPI
activates; the hospital records an Encounter; HAPI notifies the API (with the secret it was given);
the notification queues the tracking of that patient's case, and the next round (the worker's) records
the move. A closed case leaves the criteria; `subscriptions` lists ours with their status;
`unsubscribe` removes ours and only ours.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting, Case, Period
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import list_subscriptions_on_server, run_pull, subscribe, unsubscribe
from fhir_cm.store import Store, list_subscriptions, list_transitions, pending_tracking, save_case
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server
WAIT = 90.0


@pytest.fixture
def fhir_server(hapi_r4: Any) -> str:
    """Only HAPI here: it is the server whose subscription engine a hospital or a HAPI user meets."""
    return str(hapi_r4.base_url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api(settings: Settings) -> Iterator[str]:
    """``fhir-cm serve`` on the test's store, in a process of its own; yields its notifications URL."""
    port = _free_port()
    env = {**os.environ, "FHIR_CM_DATABASE_URL": settings.database_url,
           "FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system}
    env.pop("FHIR_CM_FHIR_BASE", None)
    proc = subprocess.Popen([sys.executable, "-c", "from fhir_cm.cli import main; main()", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        yield f"{base}/notifications"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"waited {WAIT:.0f} s for {what}"
        await asyncio.sleep(0.5)


async def test_hapi_notifies_fhir_cm_and_the_next_round_records_the_move(
    store: Store, raw: AsyncFhirClient, settings: Settings, api: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    hospital = f"hosp-{tag}"
    await put_organisations(raw, hospital)
    case = await enrol(store, raw, settings, tag)
    other = await enrol(store, raw, settings, uuid.uuid4().hex[:10])
    await run_pull(store, settings)  # the watch reads both histories once (nothing yet)

    made = await subscribe(store, settings, api)
    assert len(made.created) == 1 and made.patients == 2
    with store.session(read_only=True) as s:
        (held,) = list_subscriptions(s, raw.base_url)
    copy = await raw.read("Subscription", str(held.server_id))
    assert copy["criteria"].startswith("Encounter?patient=") and copy["channel"]["type"] == "rest-hook"
    assert held.secret_hash not in str(copy)  # the store keeps a hash; the server has the secret itself

    async def active() -> bool:
        states = await list_subscriptions_on_server(store, settings)
        return all(s.status == "active" for s in states)
    await _until("HAPI to activate the subscription", active)

    # The hospital records a stay; HAPI notifies the API, which queues the tracking of that patient.
    await raw.create(encounter(f"pat-{tag}", "IMP", "2024-05-01", "2024-05-04", hospital, disposition="home"))

    async def queued() -> list[Any]:
        with store.session(read_only=True) as s:
            return pending_tracking(s, raw.base_url)
    rows = await _until("HAPI's notification to reach the API", queued)
    assert {r.patient_id for r in rows} == {f"pat-{tag}"}

    round_ = await run_pull(store, settings)  # what the worker's next round does
    assert case.id in round_.transitions.changed_cases
    with store.session(read_only=True) as s:
        moves = [(t.from_setting, t.to_setting) for t in list_transitions(s, case.id)]
        assert pending_tracking(s, raw.base_url) == []
    assert moves == [(CareSetting.ACUTE_HOSPITAL, CareSetting.HOME)]

    # A notification without the secret is refused, and nothing is recorded.
    async with httpx.AsyncClient() as http:
        refused = await http.put(f"{api}/{held.id}/Encounter/x", json={"resourceType": "Encounter", "id": "x"},
                                 headers={"Authorization": "Bearer not-the-secret"})
        assert refused.status_code == 401
        assert (await http.post(f"{api}/{held.id}")).status_code == 401
    assert await queued() == []

    # A closed case leaves the criteria.
    with store.session() as s:
        closed = Case.model_validate({**other.model_dump(), "status": "closed",
                                      "period": Period(start=other.period.start, end=dt.date.today()).model_dump()})
        save_case(s, closed, enqueue=False)
    again = await subscribe(store, settings, api)
    assert again.updated == [held.id] and again.patients == 1
    copy = await raw.read("Subscription", str(held.server_id))
    assert copy["criteria"] == f"Encounter?patient=Patient/pat-{tag}"

    # Unsubscribe removes ours only.
    theirs = await raw.create({"resourceType": "Subscription", "status": "requested", "reason": "someone else's",
                               "criteria": "Encounter?status=finished",
                               "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/x"}})
    gone = await unsubscribe(store, settings)
    assert gone.removed == [held.id]
    assert (await raw.read("Subscription", str(theirs.id)))["id"] == str(theirs.id)
    with pytest.raises(Exception):  # noqa: B017 - ResourceGone or ResourceNotFound, as the server says
        await raw.read("Subscription", str(held.server_id))
