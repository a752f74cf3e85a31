"""``ledger_lookup``: the page-wide ledger lookups the pull places resources with answer as the
one-query-per-reference lookups would."""

from __future__ import annotations

from pathlib import Path

from fhir_cm.mapping import ResourceKey
from fhir_cm.store import LedgerEntry, open_store, put_ledger
from fhir_cm.sync._membership import case_of, case_references, ledger_lookup

BASE = "http://fhir.example/r4"


def entry(rtype: str, key: str, case_id: str, server_id: str) -> LedgerEntry:
    copy = {"resourceType": rtype, "id": server_id}
    return LedgerEntry(
        server_base=BASE, resource_type=rtype, key=key, case_id=case_id, server_id=server_id,
        version_id="1", content_hash="x", server_copy=copy,
    )  # fmt: skip


def test_a_page_wide_lookup_places_every_resource_as_single_lookups_do(tmp_path: Path) -> None:
    resources = [
        # placed by a reference to a goal the ledger holds under a server id of its own
        {"resourceType": "CarePlan", "id": "cp1", "goal": [{"reference": "Goal/g-server-1"}]},
        # by a reference to a condition of another case
        {"resourceType": "ServiceRequest", "id": "sr1", "reasonReference": [{"reference": "Condition/c-server-2"}]},
        # by nothing the ledger knows: a reference to a resource it never saw
        {"resourceType": "Goal", "id": "g9", "addresses": [{"reference": "Condition/unknown"}]},
        # by its own server id
        {"resourceType": "Task", "id": "t-server-3", "focus": {"reference": "ServiceRequest/none"}},
    ]
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with store.session() as s:
            put_ledger(
                s,
                [
                    entry("Goal", "goal-1", "case-a", "g-server-1"),
                    entry("Condition", "cond-2", "case-b", "c-server-2"),
                    entry("Task", "task-3", "case-c", "t-server-3"),
                ],
            )
        with store.session(read_only=True) as s:
            lookup = ledger_lookup(s, BASE, [(r, list(case_references(r))) for r in resources])
            for resource in resources:
                key = ResourceKey(str(resource["resourceType"]), f"key-{resource['id']}")
                single = case_of(s, BASE, resource, key)
                paged = case_of(s, BASE, resource, key, by_server_id=lookup)
                assert paged == single
            assert [
                case_of(s, BASE, r, ResourceKey(str(r["resourceType"]), "k"), by_server_id=lookup) for r in resources
            ] == [
                "case-a",
                "case-b",
                None,
                "case-c",
            ]
