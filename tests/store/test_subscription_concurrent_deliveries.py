"""Two notifications of one subscription handled at once, on SQLite and PostgreSQL: each reads the last
event number held, then writes its own. Interleaved here deterministically — the second delivery runs
whole between the first one's read and its write — as two API workers can run them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import fhir_cm.sync._notifications as notifications
from fhir_cm.store import HeldSubscription, Store, get_subscription
from fhir_cm.sync import NotificationOutcome, receive_notification
from tests.api.test_notifications import SECRET, SUB, hold, status_bundle

Delivery = Callable[[], NotificationOutcome]


def deliver(store: Store, events: list[tuple[int, str]]) -> Delivery:
    return lambda: receive_notification(store, SUB, SECRET, status_bundle("event-notification", events))


def interleaved(monkeypatch: pytest.MonkeyPatch, first: Delivery, meanwhile: Delivery) -> tuple[Any, Any]:
    """``first`` reads the subscription; ``meanwhile`` runs whole; then ``first`` goes on to its write."""
    real = notifications.check_secret
    outcomes: list[NotificationOutcome] = []

    def read_then_let_the_other_run(*args: Any) -> HeldSubscription:
        held = real(*args)
        monkeypatch.setattr(notifications, "check_secret", real)
        outcomes.append(meanwhile())
        return held

    monkeypatch.setattr(notifications, "check_secret", read_then_let_the_other_run)
    return first(), outcomes[0]


def last_event(store: Store) -> int | None:
    with store.session(read_only=True) as s:
        held = get_subscription(s, SUB)
    assert held is not None
    return held.last_event


def test_an_earlier_event_written_last_does_not_move_the_number_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events 5 and 6 delivered at once, 6 written first: 5's write put the number back to 5, and the
    next event, 7, read as a gap — a needless catch-up of every patient of the subscription."""
    hold(store)
    deliver(store, [(4, "Encounter/e4")])()

    five, six = interleaved(monkeypatch, deliver(store, [(5, "Encounter/e5")]), deliver(store, [(6, "Encounter/e6")]))

    # 6, handled while 5 was not held yet, is a gap from where it stood: events handled out of order.
    assert six.gap and not five.gap and not five.restarted
    assert last_event(store) == 6
    seven = deliver(store, [(7, "Encounter/e7")])()
    assert (seven.gap, seven.restarted, seven.duplicates) == (False, False, 0)
    assert last_event(store) == 7


def test_a_restart_read_by_both_deliveries_keeps_the_higher_number(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted server's events 1 and 2 delivered at once, both read against the 10 held before: each
    starts the numbering again, and the one written last must not put 2 back to 1."""
    hold(store)
    deliver(store, [(10, "Encounter/e10")])()

    one, two = interleaved(monkeypatch, deliver(store, [(1, "Encounter/e1")]), deliver(store, [(2, "Encounter/e2")]))

    assert one.restarted and two.restarted
    assert last_event(store) == 2
    three = deliver(store, [(3, "Encounter/e3")])()
    assert (three.gap, three.restarted, three.duplicates) == (False, False, 0)


def test_a_restart_alone_still_starts_the_numbering_again(store: Store) -> None:
    """The one write that moves the number back: a server numbering afresh (a lower count than held)."""
    hold(store)
    deliver(store, [(10, "Encounter/e10")])()
    again = deliver(store, [(1, "Encounter/e1")])()
    assert again.restarted and last_event(store) == 1
    assert not deliver(store, [(2, "Encounter/e2")])().gap
