"""The notification endpoint: the secret checked, every payload kind understood, events deduplicated
and gaps caught up; and subscriptions re-activated when the server drops them (respx)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
import respx
from fastapi.testclient import TestClient

from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import (
    HeldSubscription,
    LedgerEntry,
    Store,
    get_subscription,
    pending_tracking,
    put_ledger,
    put_subscription,
    secret_hash,
)
from fhir_cm.sync import check_subscriptions

BASE = "http://ehr.example/fhir"
SECRET = "s3cret-of-the-subscription"
SUB = "sub-1"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


@pytest.fixture
def held(api_store: Store) -> Store:
    return hold(api_store)


def hold(api_store: Store) -> Store:
    """``api_store`` holding the topic subscription ``SUB`` of ``BASE``, of pat-1 and pat-2, no event heard."""
    with api_store.session() as s:
        put_subscription(
            s,
            HeldSubscription(
                id=SUB,
                server_base=BASE,
                server_id="77",
                kind="topic",
                endpoint="http://cm/notifications",
                topic="http://ehr.example/topic/encounter",
                criteria="http://ehr.example/topic/encounter",
                patients=["pat-1", "pat-2"],
                secret_hash=secret_hash(SECRET),
                status="requested",
                created_at=dt.datetime(2025, 6, 1, tzinfo=dt.UTC),
            ),
        )
    return api_store


def auth(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def queued(store: Store) -> list[tuple[str | None, str | None, str]]:
    with store.session(read_only=True) as s:
        return [(q.patient_id, q.resource, q.reason) for q in pending_tracking(s, BASE)]


def status_bundle(kind: str, events: list[tuple[int, str]], *, resources: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """A backport R4 notification: a history Bundle whose first entry is the status Parameters."""
    params: list[dict[str, Any]] = [
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(max((n for n, _ in events), default=0))},
    ]
    for number, focus in events:
        params.append(
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(number)},
                    {"name": "focus", "valueReference": {"reference": focus}},
                ],
            }
        )
    return {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {"resource": {"resourceType": "Parameters", "parameter": params}},
            *({"resource": r} for r in resources),
        ],
    }


def encounter(eid: str, patient: str, version: str = "1") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "meta": {"versionId": version},
        "status": "in-progress",
        "subject": {"reference": f"Patient/{patient}"},
    }


def test_a_wrong_or_missing_secret_or_an_unknown_subscription_is_refused_and_nothing_recorded(
    client: TestClient, held: Store
) -> None:
    for headers in ({}, auth("wrong"), {"Authorization": "Basic eDp5"}):
        response = client.post(f"/notifications/{SUB}", json=encounter("e1", "pat-1"), headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    assert client.post("/notifications/sub-unknown", headers=auth()).status_code == 401
    assert queued(held) == []
    with held.session(read_only=True) as s:
        sub = get_subscription(s, SUB)
    assert sub is not None and sub.status == "requested" and sub.last_notified_at is None


def test_the_handshake_is_answered_and_marks_the_subscription_active(client: TestClient, held: Store) -> None:
    response = client.post(f"/notifications/{SUB}", json=status_bundle("handshake", []), headers=auth())
    assert response.status_code == 200 and response.json()["kind"] == "handshake"
    with held.session(read_only=True) as s:
        sub = get_subscription(s, SUB)
    assert sub is not None and sub.status == "active" and sub.last_notified_at is not None
    assert queued(held) == []


def test_empty_id_only_and_full_resource_payloads_each_queue_the_right_tracking(
    client: TestClient, held: Store
) -> None:
    assert client.post(f"/notifications/{SUB}", headers=auth()).json()["kind"] == "empty"
    assert queued(held) == [("pat-1", None, "notification"), ("pat-2", None, "notification")]
    client.put(f"/notifications/{SUB}/Encounter/e9", headers=auth())  # the address only: its patient is read later
    client.put(f"/notifications/{SUB}/Encounter/e1", json=encounter("e1", "pat-2"), headers=auth())
    assert queued(held)[2:] == [(None, "Encounter/e9", "notification"), ("pat-2", None, "notification")]
    client.put(f"/notifications/{SUB}/Encounter/e5", json=encounter("e5", "pat-someone-else"), headers=auth())
    assert len(queued(held)) == 4  # a patient the subscription does not watch queues nothing


def test_a_version_already_read_is_not_queued_again(client: TestClient, held: Store) -> None:
    with held.session() as s:
        put_ledger(
            s, [LedgerEntry(server_base=BASE, resource_type="Encounter", key="e1", server_id="e1", version_id="3")]
        )
    outcome = client.put(
        f"/notifications/{SUB}/Encounter/e1", json=encounter("e1", "pat-1", "3"), headers=auth()
    ).json()
    assert (outcome["queued"], outcome["duplicates"]) == (0, 1)


def test_events_are_deduplicated_by_number_and_a_gap_queues_a_catch_up(client: TestClient, held: Store) -> None:
    first = client.post(
        f"/notifications/{SUB}",
        headers=auth(),
        json=status_bundle("event-notification", [(1, "Encounter/e1")], resources=[encounter("e1", "pat-1")]),
    ).json()
    assert (first["queued"], first["gap"]) == (1, False)
    repeat = client.post(
        f"/notifications/{SUB}",
        headers=auth(),
        json=status_bundle("event-notification", [(1, "Encounter/e1")], resources=[encounter("e1", "pat-1")]),
    ).json()
    assert (repeat["queued"], repeat["duplicates"]) == (0, 1)
    jump = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(4, "Encounter/e7")])
    ).json()  # events 2 and 3 never arrived; id-only
    assert jump["gap"] is True
    assert queued(held)[1:] == [("pat-1", None, "gap"), ("pat-2", None, "gap"), (None, "Encounter/e7", "notification")]
    with held.session(read_only=True) as s:
        sub = get_subscription(s, SUB)
    assert sub is not None and sub.last_event == 4


def test_a_body_that_is_not_json_is_refused_plainly_after_the_secret(client: TestClient, held: Store) -> None:
    response = client.post(
        f"/notifications/{SUB}", content=b"{not json", headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422 and "not JSON" in response.json()["detail"] and queued(held) == []
    assert client.post(f"/notifications/{SUB}", content=b"{not json").status_code == 401


async def test_a_subscription_in_error_or_silent_past_its_heartbeat_is_reactivated_with_a_catch_up(held: Store) -> None:
    server_copy = {
        "resourceType": "Subscription",
        "id": "77",
        "status": "error",
        "error": "endpoint unreachable",
        "criteria": "http://ehr.example/topic/encounter",
        "channel": {"type": "rest-hook"},
    }
    updates: list[dict[str, Any]] = []

    def put(request: httpx.Request) -> httpx.Response:
        import json

        updates.append(json.loads(request.content))
        return httpx.Response(200, json=updates[-1])

    with respx.mock(base_url=BASE) as mock:
        mock.get("/Subscription/77").mock(return_value=httpx.Response(200, json=server_copy))
        mock.put("/Subscription/77").mock(side_effect=put)
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            report = await check_subscriptions(held, client)
    assert report.reactivated == [SUB] and report.caught_up == 2
    assert updates[0]["status"] == "requested" and "error" not in updates[0]
    assert queued(held) == [("pat-1", None, "catch-up"), ("pat-2", None, "catch-up")]

    # Active on the server, but nothing heard for more than two heartbeat periods: caught up as well.
    server_copy["status"] = "active"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with respx.mock(base_url=BASE) as mock:
        mock.get("/Subscription/77").mock(return_value=httpx.Response(200, json=server_copy))
        mock.put("/Subscription/77").mock(side_effect=put)
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            silent = await check_subscriptions(held, client, now=later)
    assert silent.caught_up == 2


@pytest.mark.parametrize(
    "bundle",
    [
        ["a JSON array", "is no resource"],
        "a string",
        {  # R4B: a focus whose reference is no string
            "resourceType": "Bundle",
            "type": "history",
            "entry": [
                {
                    "resource": {
                        "resourceType": "SubscriptionStatus",
                        "type": "event-notification",
                        "notificationEvent": [{"eventNumber": "1", "focus": {"reference": ["Encounter/1"]}}],
                    }
                }
            ],
        },
        {  # R4: a focus whose reference is a number
            "resourceType": "Bundle",
            "type": "history",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Parameters",
                        "parameter": [
                            {
                                "name": "notification-event",
                                "part": [
                                    {"name": "event-number", "valueString": "1"},
                                    {"name": "focus", "valueReference": {"reference": 5}},
                                ],
                            }
                        ],
                    }
                }
            ],
        },
        status_bundle("event-notification", [(2**63, "Encounter/e1")]),  # beyond any server's count
        status_bundle("event-notification", [(-1, "Encounter/e1")]),
        {"resourceType": "Bundle", "type": "history", "entry": "not a list"},
        {
            "resourceType": "Bundle",
            "type": "history",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Parameters",
                        "parameter": [{"name": "notification-event", "part": "garbage"}],
                    }
                }
            ],
        },
        {
            "resourceType": "Bundle",
            "type": "history",
            "entry": [
                {"resource": {"resourceType": "Parameters", "parameter": [{"name": "type", "valueCode": "party-time"}]}}
            ],
        },
    ],
)
def test_a_malformed_notification_bundle_is_a_clear_422_and_nothing_is_recorded(
    client: TestClient, held: Store, bundle: Any
) -> None:
    response = client.post(f"/notifications/{SUB}", json=bundle, headers=auth())
    assert response.status_code == 422 and response.headers["content-type"] == "application/problem+json"
    assert queued(held) == []


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(status_bundle("event-notification", [(1, "Encounter/e1")])).replace(
            '"valueString": "1"}', '"valueInteger64": Infinity}'
        ),
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["infinite event number", "nested past any resource"],
)
def test_json_only_python_reads_is_a_clear_422(client: TestClient, held: Store, body: str) -> None:
    response = client.post(
        f"/notifications/{SUB}", content=body.encode(), headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json" and queued(held) == []


def test_an_event_arriving_after_a_later_one_is_followed_as_a_numbering_afresh(client: TestClient, held: Store) -> None:
    """Late, an event counts fewer events than were received, as a restarted server's first does: it is
    followed with a catch-up rather than dropped, since dropping would lose a restarted server's events."""
    late = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(2, "Encounter/e2")])
    ).json()  # event 1 is still on its way
    assert late["gap"] is True
    first = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(1, "Encounter/e1")])
    ).json()
    assert (first["queued"], first["duplicates"], first["restarted"]) == (3, 0, True)
    assert [r for _, _, r in queued(held)] == ["gap", "gap", "notification", "gap", "gap", "notification"]


def with_count(bundle: dict[str, Any], count: str) -> dict[str, Any]:
    """``bundle`` with its status's events-since-subscription-start set to ``count``."""
    for p in bundle["entry"][0]["resource"]["parameter"]:
        if p["name"] == "events-since-subscription-start":
            p["valueString"] = count
    return bundle


def test_an_event_number_past_the_events_counted_is_refused_and_later_events_still_count(
    client: TestClient, held: Store
) -> None:
    """Kept, 2^63 - 1 would have made every later event of the server's look like a repeat."""
    forged = with_count(status_bundle("event-notification", [(2**63 - 1, "Encounter/e9")]), "1")

    refused = client.post(f"/notifications/{SUB}", headers=auth(), json=forged)

    assert refused.status_code == 422 and "past the events" in refused.json()["detail"]
    assert queued(held) == []
    after = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(1, "Encounter/e1")])
    ).json()
    assert (after["queued"], after["duplicates"], after["gap"]) == (1, 0, False)


def test_a_count_that_is_no_number_is_refused(client: TestClient, held: Store) -> None:
    bundle = with_count(status_bundle("heartbeat", []), "many")

    response = client.post(f"/notifications/{SUB}", headers=auth(), json=bundle)

    assert response.status_code == 422 and "eventsSinceSubscriptionStart" in response.json()["detail"]


def test_a_heartbeat_counting_events_never_received_queues_a_catch_up(client: TestClient, held: Store) -> None:
    client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(1, "Encounter/e1")])
    )
    level = client.post(f"/notifications/{SUB}", headers=auth(), json=with_count(status_bundle("heartbeat", []), "1"))
    assert (level.json()["gap"], len(queued(held))) == (False, 1)

    behind = client.post(f"/notifications/{SUB}", headers=auth(), json=with_count(status_bundle("heartbeat", []), "3"))

    assert behind.status_code == 200 and behind.json()["gap"] is True  # events 2 and 3 never arrived
    assert queued(held)[1:] == [("pat-1", None, "gap"), ("pat-2", None, "gap")]
    with held.session(read_only=True) as s:
        sub = get_subscription(s, SUB)
    assert sub is not None and sub.last_event == 3
    late = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(3, "Encounter/e3")])
    ).json()
    assert (late["queued"], late["duplicates"]) == (0, 1)  # covered by the catch-up


def test_a_server_numbering_afresh_after_a_restart_loses_no_event(client: TestClient, held: Store) -> None:
    """HAPI keeps its event counters in memory: restarted, it numbers its events from 1 again."""
    for n in (1, 2, 3):
        client.post(
            f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(n, f"Encounter/e{n}")])
        )

    first = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(1, "Encounter/e9")])
    ).json()
    second = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(2, "Encounter/e10")])
    ).json()

    assert (first["restarted"], first["gap"], first["duplicates"]) == (True, True, 0)
    assert (second["restarted"], second["gap"], second["duplicates"]) == (False, False, 0)
    assert queued(held)[3:] == [
        ("pat-1", None, "gap"),  # what the server sent while restarting may be lost: caught up
        ("pat-2", None, "gap"),
        (None, "Encounter/e9", "notification"),
        (None, "Encounter/e10", "notification"),
    ]
    with held.session(read_only=True) as s:
        sub = get_subscription(s, SUB)
    assert sub is not None and sub.last_event == 2


@pytest.mark.parametrize("kind", ["heartbeat", "handshake"])
def test_a_heartbeat_counting_fewer_events_or_a_new_handshake_starts_the_numbering_again(
    client: TestClient, held: Store, kind: str
) -> None:
    for n in (1, 2, 3):
        client.post(
            f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(n, f"Encounter/e{n}")])
        )

    restart = client.post(f"/notifications/{SUB}", headers=auth(), json=with_count(status_bundle(kind, []), "0")).json()
    after = client.post(
        f"/notifications/{SUB}", headers=auth(), json=status_bundle("event-notification", [(1, "Encounter/e9")])
    ).json()

    assert (restart["restarted"], restart["gap"]) == (True, True)
    assert (after["queued"], after["duplicates"], after["gap"]) == (1, 0, False)
    assert queued(held)[3:] == [("pat-1", None, "gap"), ("pat-2", None, "gap"), (None, "Encounter/e9", "notification")]
