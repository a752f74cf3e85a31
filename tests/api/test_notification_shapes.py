"""Notifications in the shapes real servers send that ``test_notifications`` does not: event numbers as
integers, events with no focus (an ``empty`` payload), and focus references absolute or versioned."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from fhir_cm.store import Store, get_subscription
from tests.api.test_notifications import BASE, SUB, auth, encounter, held, queued, status_bundle

__all__ = ["held"]  # the fixture, shared with test_notifications


def integer_typed(bundle: dict[str, Any], value_type: str) -> dict[str, Any]:
    """``bundle`` with its counts and event numbers given as ``value_type`` integers, not strings."""
    for p in bundle["entry"][0]["resource"]["parameter"]:
        for holder in (p, *p.get("part", [])):
            if "valueString" in holder:
                holder[value_type] = int(holder.pop("valueString"))
    return bundle


def without_focus(bundle: dict[str, Any]) -> dict[str, Any]:
    """``bundle`` as an ``empty`` payload carries it: its events numbered, none naming a resource."""
    for p in bundle["entry"][0]["resource"]["parameter"]:
        p["part"] = [q for q in p.get("part", []) if q["name"] != "focus"] if "part" in p else None
        if p["part"] is None:
            del p["part"]
    return bundle


def last_event(store: Store) -> int | None:
    with store.session(read_only=True) as s:
        sub = get_subscription(s, SUB)
    assert sub is not None
    return sub.last_event


def test_event_numbers_and_counts_sent_as_integers_are_read(client: TestClient, held: Store) -> None:
    """A server writing the numbers as valueUnsignedInt or valueInteger had its events dropped unqueued."""
    for value_type in ("valueUnsignedInt", "valueInteger"):
        number = 1 if value_type == "valueUnsignedInt" else 2
        bundle = integer_typed(status_bundle("event-notification", [(number, f"Encounter/e{number}")]), value_type)
        outcome = client.post(f"/notifications/{SUB}", headers=auth(), json=bundle).json()
        assert (outcome["queued"], outcome["duplicates"], outcome["gap"]) == (1, 0, False), value_type
        assert last_event(held) == number
    assert queued(held) == [(None, "Encounter/e1", "notification"), (None, "Encounter/e2", "notification")]

    behind = integer_typed(status_bundle("heartbeat", [(4, "Encounter/e4")]), "valueUnsignedInt")
    del behind["entry"][0]["resource"]["parameter"][2]  # a heartbeat lists no event, only the count
    assert client.post(f"/notifications/{SUB}", headers=auth(), json=behind).json()["gap"] is True
    assert queued(held)[2:] == [("pat-1", None, "gap"), ("pat-2", None, "gap")] and last_event(held) == 4


def test_an_event_with_no_focus_queues_the_subscriptions_patients(client: TestClient, held: Store) -> None:
    """An ``empty`` payload numbers its events but names no resource: they were counted and nothing queued."""
    outcome = client.post(
        f"/notifications/{SUB}",
        headers=auth(),
        json=without_focus(status_bundle("event-notification", [(1, "Encounter/e1")])),
    ).json()

    assert (outcome["queued"], outcome["gap"]) == (2, False) and last_event(held) == 1
    assert queued(held) == [("pat-1", None, "notification"), ("pat-2", None, "notification")]
    repeat = client.post(
        f"/notifications/{SUB}",
        headers=auth(),
        json=without_focus(status_bundle("event-notification", [(1, "Encounter/e1")])),
    ).json()
    assert (repeat["queued"], repeat["duplicates"]) == (0, 1)


def test_an_event_notification_listing_no_event_queues_what_it_counts(client: TestClient, held: Store) -> None:
    """An ``empty`` payload may list no event at all, only the count: the events it counts were dropped."""
    bundle = status_bundle("event-notification", [(1, "Encounter/e1")])
    del bundle["entry"][0]["resource"]["parameter"][2]

    outcome = client.post(f"/notifications/{SUB}", headers=auth(), json=bundle).json()

    assert outcome["queued"] == 2 and last_event(held) == 1
    assert queued(held) == [("pat-1", None, "notification"), ("pat-2", None, "notification")]
    again = client.post(f"/notifications/{SUB}", headers=auth(), json=bundle).json()
    assert again["queued"] == 0  # the same count again: nothing new


def test_a_focus_absolute_or_versioned_is_queued_by_its_address(client: TestClient, held: Store) -> None:
    """The worker read ``Encounter/e1/_history/2`` as an id and failed every round after."""
    full = status_bundle(
        "event-notification", [(1, f"{BASE}/Encounter/e1/_history/2")], resources=[encounter("e1", "pat-2", "2")]
    )
    id_only = status_bundle("event-notification", [(2, "Encounter/e7/_history/5"), (3, f"{BASE}/Encounter/e8")])
    unreadable = status_bundle("event-notification", [(4, f"{BASE}/{'x' * 300}")])

    assert client.post(f"/notifications/{SUB}", headers=auth(), json=full).json()["queued"] == 1
    assert client.post(f"/notifications/{SUB}", headers=auth(), json=id_only).json()["queued"] == 2
    assert client.post(f"/notifications/{SUB}", headers=auth(), json=unreadable).status_code == 200

    assert queued(held) == [
        ("pat-2", None, "notification"),
        (None, "Encounter/e7", "notification"),
        (None, "Encounter/e8", "notification"),
        ("pat-1", None, "notification"),  # a focus that names no resource: every patient is tracked
        ("pat-2", None, "notification"),
    ]


def test_a_resource_path_no_request_can_carry_is_refused(client: TestClient, held: Store) -> None:
    """``Encounter/..`` was queued, and the worker's read of it raised in every round after."""
    for rid in ("%2E%2E", "%2E"):
        response = client.put(f"/notifications/{SUB}/Encounter/{rid}", headers=auth())
        assert response.status_code == 422, rid
    assert queued(held) == []
