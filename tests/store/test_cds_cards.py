"""Cards issued by the CDS Hooks services: kept for feedback for a month, then forgotten."""

from __future__ import annotations

import datetime as dt

from fhir_cm.store import CARD_KEPT, IssuedCard, Store, card_issued, record_card

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def card(uuid: str) -> IssuedCard:
    return IssuedCard(uuid=uuid, service_id="fhir-cm-eligibility", kind="eligible", patient_id="pat-1")


def test_a_card_takes_feedback_for_a_month_and_is_then_forgotten(store: Store) -> None:
    """A card is answered per chart opened: kept for good, the table would grow with every view."""
    with store.session() as s:
        record_card(s, card("old"), now=NOW - CARD_KEPT - dt.timedelta(seconds=1))
        record_card(s, card("month"), now=NOW - CARD_KEPT)
        record_card(s, card("new"), now=NOW)
    with store.session(read_only=True) as s:
        assert card_issued(s, "old") is None
        assert card_issued(s, "month") == card("month")
        assert card_issued(s, "new") == card("new")
