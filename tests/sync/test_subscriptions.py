"""Subscriptions made for a server offering a topic (backport), on a server faked with respx."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from fhir_cm.domain import Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient, Conflict
from fhir_cm.store import (
    HeldSubscription,
    Store,
    list_subscriptions,
    open_store,
    put_subscription,
    save_case,
    secret_hash,
)
from fhir_cm.sync import SubscriptionRefused, sync_subscriptions, unsubscribe_all
from fhir_cm.sync import _subscriptions as subscriptions_module

BASE = "http://ehr.example/fhir"
TOPIC = "http://ehr.example/SubscriptionTopic/encounter-start-end"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


def _enrol(store: Store, count: int) -> None:
    """Open cases ``case-<n>`` of patients ``pat-<n>``."""
    with store.session() as s:
        for n in range(count):
            case = Case(
                id=f"case-{n}",
                programme="health-care",
                period=Period(start=dt.date(2024, 1, 1)),
                patient=Party(kind="patient", id=f"pat-{n}"),
            )
            save_case(s, case, enqueue=False)


async def test_a_topic_subscription_carries_the_filter_payload_level_heartbeat_and_secret(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        _enrol(store, 3)
        sent: list[dict[str, Any]] = []

        def create(request: httpx.Request) -> httpx.Response:
            sent.append(json.loads(request.content))
            return httpx.Response(
                201, json={**sent[-1], "id": "41"}, headers={"Location": f"{BASE}/Subscription/41/_history/1"}
            )

        with respx.mock(base_url=BASE) as mock:
            mock.post("/Subscription").mock(side_effect=create)
            async with AsyncFhirClient(BASE, enforce_capabilities=False, fhir_version="R4") as client:
                report = await sync_subscriptions(
                    store, client, endpoint="https://cm.example/notifications", topic=TOPIC
                )
        (made,) = sent
        assert report.patients == 3 and len(report.created) == 1
        assert made["criteria"] == TOPIC
        assert made["_criteria"]["extension"][0] == {
            "url": f"{BACKPORT}/backport-filter-criteria",
            "valueString": "Encounter?patient=Patient/pat-0,Patient/pat-1,Patient/pat-2",
        }
        assert made["channel"]["_payload"]["extension"][0]["valueCode"] == "id-only"
        assert made["channel"]["extension"][0]["url"] == f"{BACKPORT}/backport-heartbeat-period"
        (header,) = made["channel"]["header"]
        with store.session(read_only=True) as s:
            (held,) = list_subscriptions(s, BASE)
        assert made["channel"]["endpoint"] == f"https://cm.example/notifications/{held.id}"
        secret = header.removeprefix("Authorization: Bearer ")
        assert len(secret) >= 40 and secret not in held.model_dump_json()  # only its hash is kept
        assert (held.kind, held.server_id, held.topic) == ("topic", "41", TOPIC)


@pytest.mark.parametrize(
    "endpoint",
    [
        "notaurl",
        "ftp://cm.example/notifications",
        "http://cm.example/notifications",
        "http://localhost.evil.example/n",
        "https://cm.example/notifications?via=proxy",  # <endpoint>/<id> would land in the query
        "https://cm.example/notifications#x",
    ],
)
async def test_an_endpoint_the_secret_would_travel_to_in_the_clear_or_no_route_is_refused(
    tmp_path: Path, endpoint: str
) -> None:
    with (
        open_store(f"sqlite:///{tmp_path / 's.db'}") as store,
        respx.mock(base_url=BASE, assert_all_called=False) as mock,
    ):
        created = mock.post("/Subscription").mock(return_value=httpx.Response(500))
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            with pytest.raises(SubscriptionRefused, match="https|no query"):
                await sync_subscriptions(store, client, endpoint=endpoint)
        assert not created.calls
        with store.session(read_only=True) as s:
            assert list_subscriptions(s, BASE) == []


async def test_subscribing_again_with_a_topic_turns_the_criteria_subscriptions_into_topic_ones(tmp_path: Path) -> None:
    """The patients and the endpoint unchanged, ``subscribe --topic`` kept the R4 criteria subscription
    and said so ('1 kept'): the backport topic asked for was never used."""
    endpoint = "https://cm.example/notifications"
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        _enrol(store, 1)
        _held(store, endpoint=endpoint, status="active")
        sent: list[dict[str, Any]] = []

        def update(request: httpx.Request) -> httpx.Response:
            sent.append(json.loads(request.content))
            return httpx.Response(200, json={**sent[-1], "meta": {"versionId": "2"}})

        with respx.mock(base_url=BASE) as mock:
            mock.put("/Subscription/41").mock(side_effect=update)
            async with AsyncFhirClient(BASE, enforce_capabilities=False, fhir_version="R4") as client:
                report = await sync_subscriptions(store, client, endpoint=endpoint, topic=TOPIC)
        assert (report.updated, report.kept) == (["sub-1"], [])
        (made,) = sent
        assert made["criteria"] == TOPIC and made["channel"]["_payload"]["extension"][0]["valueCode"] == "id-only"
        with store.session(read_only=True) as s:
            (held,) = list_subscriptions(s, BASE)
        assert (held.kind, held.topic, held.server_id) == ("topic", TOPIC, "41")


def _held(store: Store, *, endpoint: str = "https://cm.example/notifications", status: str = "requested") -> None:
    """One criteria subscription of ours for ``pat-0``, ``Subscription/41`` on the server."""
    with store.session() as s:
        put_subscription(
            s,
            HeldSubscription(
                id="sub-1",
                server_base=BASE,
                server_id="41",
                kind="criteria",
                endpoint=endpoint,
                criteria="Encounter?patient=Patient/pat-0",
                patients=["pat-0"],
                secret_hash=secret_hash("old"),
                status=status,
                last_event=None,
                created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
            ),
        )


#: HAPI's answer to a delete while it writes the subscription's status as it activates it.
_BUSY = {
    "resourceType": "OperationOutcome",
    "issue": [
        {"severity": "error", "code": "processing", "diagnostics": "HAPI-0550: HAPI-0823: version constraint failure"}
    ],
}


async def test_unsubscribing_while_the_server_activates_the_subscription_deletes_it_once_its_write_ends(
    tmp_path: Path,
) -> None:
    """HAPI answers a delete 409 while its own activation writes the subscription (right after a
    ``subscribe``, as seen against HAPI 8.8): the delete is sent again, and ours is forgotten only once
    the server has deleted it."""
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        _held(store)
        with respx.mock(base_url=BASE) as mock:
            route = mock.delete("/Subscription/41").mock(
                side_effect=[httpx.Response(409, json=_BUSY), httpx.Response(409, json=_BUSY), httpx.Response(204)]
            )
            async with AsyncFhirClient(BASE, enforce_capabilities=False, fhir_version="R4") as client:
                report = await unsubscribe_all(store, client)
        assert route.call_count == 3 and report.removed == ["sub-1"]
        with store.session(read_only=True) as s:
            assert list_subscriptions(s, BASE) == []


async def test_a_delete_the_server_keeps_refusing_is_reported_with_its_reason_and_the_subscription_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriptions_module, "DELETE_CONFLICT_WAIT", 1.0)
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        _held(store)
        with respx.mock(base_url=BASE) as mock:
            mock.delete("/Subscription/41").mock(return_value=httpx.Response(409, json=_BUSY))
            async with AsyncFhirClient(BASE, enforce_capabilities=False, fhir_version="R4") as client:
                with pytest.raises(Conflict, match="version constraint failure"):
                    await unsubscribe_all(store, client)
        with store.session(read_only=True) as s:
            assert [h.id for h in list_subscriptions(s, BASE)] == ["sub-1"]
