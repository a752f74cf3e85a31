"""Event numbers as large as the backport allows (its integer64, sent as a string) are kept on every backend."""

from __future__ import annotations

from fhir_cm.store import Store, get_subscription
from fhir_cm.sync import receive_notification
from tests.api.test_notifications import SECRET, SUB, hold, status_bundle


def test_an_event_number_past_2_to_the_31_is_kept_and_the_next_one_follows(store: Store) -> None:
    """A server numbering events from a sequence of its own (any integer64): on PostgreSQL the column
    was 32 bits, and the notification a 500 — the server retrying it for ever, its events lost."""
    hold(store)
    big = 2**40

    first = receive_notification(store, SUB, SECRET, status_bundle("event-notification", [(big, "Encounter/e1")]))
    after = receive_notification(store, SUB, SECRET, status_bundle("event-notification", [(big + 1, "Encounter/e2")]))

    assert first.gap  # the first heard of: a catch-up
    assert (after.queued, after.gap, after.duplicates) == (1, False, 0)
    with store.session(read_only=True) as s:
        held = get_subscription(s, SUB)
    assert held is not None and held.last_event == big + 1
