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
from fhir_cm.store import Store, follow_up_latencies, list_subscriptions, list_transitions, pending_tracking, save_case
from fhir_cm.sync import track_notified
from tests.api_process import ApiProcess
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server
WAIT = 90.0


@pytest.fixture
def fhir_server(hapi_r4: Any) -> str:
    """Only HAPI here: it is the server whose subscription engine a hospital or a HAPI user meets."""
    return str(hapi_r4.base_url)


@pytest.fixture
def api(settings: Settings) -> Iterator[ApiProcess]:
    process = ApiProcess(settings.database_url, env={"FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system})
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def _until(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"waited {WAIT:.0f} s for {what}"
        await asyncio.sleep(0.5)


async def test_a_notification_alone_records_the_move_and_a_restart_loses_nothing(
    store: Store, raw: AsyncFhirClient, settings: Settings, api: ApiProcess
) -> None:
    tag = uuid.uuid4().hex[:10]
    hospital = f"hosp-{tag}"
    await put_organisations(raw, hospital)
    case = await enrol(store, raw, settings, tag)
    other = await enrol(store, raw, settings, uuid.uuid4().hex[:10])
    await run_pull(store, settings)  # the watch reads both histories once (nothing yet)

    made = await subscribe(store, settings, api.notifications)
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

    # The worker's first step: the notified cases only — no pull, no watch.
    async with AsyncFhirClient(raw.base_url, enforce_capabilities=False) as reader:
        round_ = await track_notified(store, reader, settings, push_with=raw)
    assert round_.transitions.changed_cases == [case.id]
    with store.session(read_only=True) as s:
        moves = [(t.from_setting, t.to_setting) for t in list_transitions(s, case.id)]
        # The notified rows were consumed. (Pushing the case writes its new stay as an Encounter,
        # which HAPI may notify in turn: that echo can be queued again at any moment.)
        assert {r.id for r in rows}.isdisjoint(r.id for r in pending_tracking(s, raw.base_url))
        waited = follow_up_latencies(s)
    assert moves == [(CareSetting.ACUTE_HOSPITAL, CareSetting.HOME)]
    assert round_.follow_ups is not None and round_.follow_ups.on_server == [case.id] and len(waited) == 1

    # The receiving service goes down; the hospital records more; it comes back: nothing is lost.
    api.stop()
    await raw.create(encounter(f"pat-{tag}", "IMP", "2024-05-20", "2024-05-22", hospital, disposition="home"))
    await asyncio.sleep(2)
    api.start()
    await run_pull(store, settings)  # the next round: redelivered notifications, or the watch's catch-up
    with store.session(read_only=True) as s:
        moves = [(t.from_setting, t.to_setting, t.readmission) for t in list_transitions(s, case.id)]
    assert moves == [
        (CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, False),
        (CareSetting.HOME, CareSetting.ACUTE_HOSPITAL, True),
        (CareSetting.ACUTE_HOSPITAL, CareSetting.HOME, False),
    ]

    # A notification without the secret is refused, and nothing is recorded.
    await run_pull(store, settings)  # (anything HAPI redelivered after the restart is tracked first)
    async with httpx.AsyncClient() as http:
        refused = await http.put(
            f"{api.notifications}/{held.id}/Encounter/x",
            json={"resourceType": "Encounter", "id": "x"},
            headers={"Authorization": "Bearer not-the-secret"},
        )
        assert refused.status_code == 401
        assert (await http.post(f"{api.notifications}/{held.id}")).status_code == 401
    assert await queued() == []

    # A closed case leaves the criteria.
    with store.session() as s:
        closed = Case.model_validate(
            {
                **other.model_dump(),
                "status": "closed",
                "period": Period(start=other.period.start, end=dt.date.today()).model_dump(),
            }
        )
        save_case(s, closed, enqueue=False)
    again = await subscribe(store, settings, api.notifications)
    assert again.updated == [held.id] and again.patients == 1
    copy = await raw.read("Subscription", str(held.server_id))
    assert copy["criteria"] == f"Encounter?patient=Patient/pat-{tag}"

    # Unsubscribe removes ours only.
    theirs = await raw.create(
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "someone else's",
            "criteria": "Encounter?status=finished",
            "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/x"},
        }
    )
    gone = await unsubscribe(store, settings)
    assert gone.removed == [held.id]
    assert (await raw.read("Subscription", str(theirs.id)))["id"] == str(theirs.id)
    with pytest.raises(Exception):  # noqa: B017 - ResourceGone or ResourceNotFound, as the server says
        await raw.read("Subscription", str(held.server_id))
