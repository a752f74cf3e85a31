"""Text with a NUL character in it, as a server may send (FHIR forbids it; servers do not all refuse
it): PostgreSQL text cannot hold one and psycopg refuses the whole statement. Looked up, it finds
nothing; set aside, it is kept with the replacement character; both backends answer alike."""

from __future__ import annotations

import datetime as dt

from fhir_cm.store import Store, add_quarantine, find_ledger, list_quarantine, put_ledger
from tests.store.test_ledger import HAPI, entry

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
#: What takes a NUL's place: the replacement character, as for bytes that are no UTF-8.
NUL_REPLACEMENT = "\ufffd"


def test_a_lookup_by_a_value_holding_nul_finds_nothing(store: Store) -> None:
    with store.session() as s:
        put_ledger(s, [entry("goal-1", "17")], now=T0)
    with store.session(read_only=True) as s:
        found = find_ledger(s, HAPI, "Goal", keys=["goal-\x001", "goal-1"], server_ids=["1\x007"])
    assert [e.key for e in found] == ["goal-1"]


def test_a_resource_holding_nul_is_set_aside_once_and_listed(store: Store) -> None:
    bad = {"resourceType": "Goal", "id": "g\x001", "meta": {"versionId": "2\x00"}, "note": [{"text": "a\x00b"}]}
    with store.session() as s:
        first = add_quarantine(s, source=HAPI, raw=bad, reason="id g\x001 breaks a rule", now=T0)
        again = add_quarantine(s, source=HAPI, raw=bad, reason="id g\x001 breaks a rule", now=T0)
        text = add_quarantine(s, source=HAPI, raw='{"resourceType": "Goal", \x00', reason="not JSON", now=T0)
    with store.session(read_only=True) as s:
        entries = {q.id: q for q in list_quarantine(s)}
    assert (first.id, first.news, again.id, again.news) == (first.id, True, first.id, False)
    held = entries[first.id]
    g1 = f"g{NUL_REPLACEMENT}1"
    assert (held.server_id, held.version, held.reason) == (g1, f"2{NUL_REPLACEMENT}", f"id {g1} breaks a rule")
    assert held.raw.startswith('{"resourceType":"Goal","id":"g\\u00001"')  # JSON text escapes it: kept as sent
    assert entries[text.id].raw == f'{{"resourceType": "Goal", {NUL_REPLACEMENT}'
    assert len(entries) == 2
