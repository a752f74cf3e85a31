"""The sync ledger: per server, the id, versionId and last copy of each resource."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_cm.store import (
    LedgerEntry,
    Store,
    StoreError,
    find_ledger,
    get_ledger,
    ledger_by_server_id,
    ledger_holds_any,
    list_ledger,
    put_ledger,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
HAPI, FIRELY = "http://hapi.example/fhir", "https://firely.example/r4"


def entry(key: str, server_id: str, base: str = HAPI, **fields: object) -> LedgerEntry:
    values = {"server_base": base, "resource_type": "Goal", "key": key, "case_id": "case-1", "server_id": server_id}
    return LedgerEntry.model_validate(values | fields)


def test_an_entry_reads_back_by_key_and_by_server_id(store: Store) -> None:
    copy = {"resourceType": "Goal", "id": "17", "meta": {"versionId": "2"}, "lifecycleStatus": "active"}
    with store.session() as s:
        put_ledger(s, [entry("goal-1", "17", version_id="2", content_hash="ab" * 32, server_copy=copy)], now=NOW)
    with store.session(read_only=True) as s:
        by_key = get_ledger(s, HAPI, "Goal", "goal-1")
        by_id = ledger_by_server_id(s, HAPI, "Goal", "17")
    assert by_key == by_id
    assert by_key == entry("goal-1", "17", version_id="2", content_hash="ab" * 32, server_copy=copy, synced_at=NOW)


def test_put_replaces_and_a_trailing_slash_names_the_same_server(store: Store) -> None:
    with store.session() as s:
        put_ledger(s, [entry("goal-1", "17", version_id="1")], now=NOW)
        put_ledger(s, [entry("goal-1", "17", base=HAPI + "/", version_id="2", last_updated="2024-05-01T12:00:00Z")])
    with store.session(read_only=True) as s:
        [only] = list_ledger(s, HAPI + "/")
    assert (only.server_base, only.version_id, only.last_updated) == (HAPI, "2", "2024-05-01T12:00:00Z")
    assert only.synced_at is not None and only.synced_at > NOW


def test_one_resource_on_two_servers_has_two_entries(store: Store) -> None:
    with store.session() as s:
        put_ledger(
            s, [entry("goal-1", "17"), entry("goal-1", "abc", base=FIRELY), entry("goal-2", "18", case_id="case-2")]
        )
    with store.session(read_only=True) as s:
        assert [e.server_id for e in list_ledger(s, HAPI)] == ["17", "18"]
        assert [e.key for e in list_ledger(s, HAPI, case_id="case-2")] == ["goal-2"]
        assert [e.server_id for e in list_ledger(s, FIRELY)] == ["abc"]
        assert ledger_by_server_id(s, FIRELY, "Goal", "17") is None
        assert get_ledger(s, FIRELY, "CarePlan", "goal-1") is None


def test_find_can_leave_the_server_copies_out(store: Store) -> None:
    """A pull's page dedupes and places by key, server id, version and hash: it reads the entries
    without their copies (``copies=False``), every other field as stored."""
    copy = {"resourceType": "Goal", "id": "17", "meta": {"versionId": "2"}, "lifecycleStatus": "active"}
    whole = entry("goal-1", "17", version_id="2", content_hash="ab" * 32, server_copy=copy, last_updated="x")
    with store.session() as s:
        put_ledger(s, [whole], now=NOW)
    with store.session(read_only=True) as s:
        [found] = find_ledger(s, HAPI, "Goal", keys=["goal-1"], copies=False)
        assert find_ledger(s, HAPI, "Goal", server_ids=["17"]) == [whole.model_copy(update={"synced_at": NOW})]
    assert found == whole.model_copy(update={"server_copy": None, "synced_at": NOW})


def test_two_keys_cannot_claim_one_server_resource(store: Store) -> None:
    with pytest.raises(StoreError), store.session() as s:
        put_ledger(s, [entry("goal-1", "17"), entry("goal-2", "17")])


def test_whether_the_ledger_holds_anything_of_a_server(store: Store) -> None:
    with store.session() as s:
        assert not ledger_holds_any(s, HAPI)
        put_ledger(s, [entry("goal-1", "17", base=FIRELY)], now=NOW)
        assert not ledger_holds_any(s, HAPI)  # another server's entries do not count
        put_ledger(s, [entry("goal-1", "17")], now=NOW)
        assert ledger_holds_any(s, HAPI) and ledger_holds_any(s, HAPI + "/")


def test_find_reads_a_pages_entries_by_key_or_server_id_in_one_call(store: Store) -> None:
    with store.session() as s:
        put_ledger(
            s,
            [
                entry("goal-1", "17"),
                entry("goal-2", "18", case_id="case-2"),
                entry("goal-3", "19"),
                entry("goal-1", "abc", base=FIRELY),
            ],
        )
    with store.session(read_only=True) as s:
        found = find_ledger(s, HAPI, "Goal", keys=["goal-1", "goal-9"], server_ids=["18", "99"])
        assert sorted(e.key for e in found) == ["goal-1", "goal-2"]
        assert find_ledger(s, HAPI, "CarePlan", keys=["goal-1"]) == []
        assert find_ledger(s, HAPI, "Goal") == []
        by_cases = list_ledger(s, HAPI, case_ids=["case-2", "case-3"])
    assert [e.key for e in by_cases] == ["goal-2"]
