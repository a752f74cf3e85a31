"""``ledger_lookup``: the page-wide ledger lookups the pull places resources with answer as the
one-query-per-reference lookups would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fhir_cm.domain import Case, CaseStatus, Party, PartyKind, Period, ProgrammeType
from fhir_cm.mapping import ResourceKey
from fhir_cm.store import LedgerEntry, open_store, put_ledger, save_case
from fhir_cm.sync._membership import RunEpisodes, case_of, case_references, ledger_lookup

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


def test_the_runs_episodes_stand_in_for_their_cases_when_placing_by_patient(tmp_path: Path) -> None:
    """A pull merges its cases at its end: until then a case it opened counts as the patient's open
    case, and one it closed does not, whatever the store still says."""
    stored = Case(
        id="case-a",
        programme=ProgrammeType.HEALTH_CARE,
        status=CaseStatus.ACTIVE,
        period=Period(start=dt.date(2024, 3, 1)),
        patient=Party(kind=PartyKind.PATIENT, id="p1"),
    )
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}}
    key = ResourceKey("Condition", "c1")
    careplan = ResourceKey("CarePlan", "case-b-careplan")
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with store.session() as s:
            save_case(s, stored, enqueue=False)
        with store.session(read_only=True) as s:
            assert case_of(s, BASE, condition, key) == "case-a"  # the store's one open case
            opened = RunEpisodes()
            opened.add("case-b", "p1", CaseStatus.ACTIVE)
            assert case_of(s, BASE, condition, key, episodes=opened) is None  # two open cases now
            assert case_of(s, BASE, {"resourceType": "CarePlan"}, careplan, episodes=opened) == "case-b"
            assert case_of(s, BASE, {"resourceType": "CarePlan"}, careplan) is None  # not stored yet
            opened.add("case-a", "p1", CaseStatus.CLOSED)
            assert case_of(s, BASE, condition, key, episodes=opened) == "case-b"  # the run closed case-a
            opened.add("case-b", "p2", CaseStatus.ACTIVE)  # a later copy of its episode names another patient
            assert case_of(s, BASE, condition, key, episodes=opened) is None
            assert len(opened) == 2 and "case-b" in opened
            opened.clear()  # merged: the store's cases stand again
            assert not opened and "case-b" not in opened
            assert case_of(s, BASE, condition, key, episodes=opened) == "case-a"
