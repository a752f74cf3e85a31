"""Screening's tables on SQLite and PostgreSQL: facts keyed by resource, slices in order, candidates.

The screening run's correctness rests on these: a re-read resource replaces its fact (an incremental
run must not count an updated Encounter twice), the ranking's slices cover every patient once in
id order whatever the slice size, and one slice's candidates are replaced without touching another's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fhir_cm.domain import Case, CaseStatus, Party, PartyKind, Period
from fhir_cm.store import (
    CandidateRecord,
    FactRecord,
    LedgerEntry,
    Store,
    count_candidates,
    drop_facts,
    ehr_patient_keys,
    forget_candidates_without_facts,
    get_watermark,
    keep_group_members,
    list_candidates,
    mark_enrolled,
    open_case_patient_ids,
    patient_facts_after,
    put_facts,
    put_ledger,
    replace_candidates,
    save_case,
    screened_group_members,
    set_watermark,
)

SERVER = "https://hospital.example/fhir"
ON = dt.date(2026, 12, 1)


def admission(rid: str, patient: str, start: dt.date) -> FactRecord:
    return FactRecord(
        resource_type="Encounter", resource_id=rid, patient_id=patient, kind="inpatient", start=start, end=start
    )


def walk(store: Store, server: str, size: int) -> list[tuple[str, list[FactRecord]]]:
    """Every slice the ranking would read, concatenated."""
    out: list[tuple[str, list[FactRecord]]] = []
    after: str | None = None
    while True:
        with store.session(read_only=True) as s:
            part = patient_facts_after(s, server, after, size)
        if not part:
            return out
        out += part
        after = part[-1][0]


def candidate(patient: str, score: int) -> CandidateRecord:
    reasons = [{"reason": "frequent-ed-visits", "display": "Frequent emergency visits", "evidence": ["x"]}]
    return CandidateRecord(server_base=SERVER, patient_id=patient, score=score, reasons=reasons, assessed_on=ON)


def test_a_resource_read_again_replaces_its_fact_even_when_it_moved_to_another_patient(store: Store) -> None:
    with store.session() as s:
        put_facts(s, SERVER, [admission("e1", "p1", dt.date(2026, 1, 1)), admission("e2", "p1", dt.date(2026, 2, 1))])
    with store.session() as s:  # the incremental read: e1 changed date, e2 now belongs to p2
        put_facts(s, SERVER, [admission("e1", "p1", dt.date(2026, 3, 1)), admission("e2", "p2", dt.date(2026, 2, 1))])
    facts = dict(walk(store, SERVER, 10))
    assert [(f.resource_id, f.start) for f in facts["p1"]] == [("e1", dt.date(2026, 3, 1))]
    assert [f.resource_id for f in facts["p2"]] == ["e2"]


def test_dropped_facts_are_forgotten_for_that_server_and_type_only(store: Store) -> None:
    other = "https://other.example/fhir"
    with store.session() as s:
        put_facts(s, SERVER, [admission("e1", "p1", ON), admission("e2", "p1", ON)])
        put_facts(
            s, SERVER, [FactRecord(resource_type="Condition", resource_id="e1", patient_id="p1", kind="condition")]
        )
        put_facts(s, other, [admission("e1", "p1", ON)])
    with store.session() as s:
        drop_facts(s, SERVER + "/", [("Encounter", "e1"), ("Encounter", "never-seen")])
        drop_facts(s, SERVER, [])
    left = sorted((f.resource_type, f.resource_id) for f in dict(walk(store, SERVER, 10))["p1"])
    assert left == [("Condition", "e1"), ("Encounter", "e2")]
    assert [f.resource_id for f in dict(walk(store, other, 10))["p1"]] == ["e1"]


def test_the_same_resource_twice_in_one_batch_keeps_the_last(store: Store) -> None:
    with store.session() as s:
        put_facts(s, SERVER, [admission("e1", "p1", dt.date(2026, 1, 1)), admission("e1", "p1", dt.date(2026, 4, 1))])
    assert [f.start for f in dict(walk(store, SERVER, 10))["p1"]] == [dt.date(2026, 4, 1)]


def test_slices_cover_every_patient_once_in_id_order_with_all_their_facts(store: Store) -> None:
    patients = [f"p{i:03d}" for i in range(23)]
    with store.session() as s:
        facts = [
            admission(f"{p}-e{k}", p, dt.date(2026, 1, 1 + k)) for i, p in enumerate(patients) for k in range(i % 3 + 1)
        ]
        put_facts(s, SERVER, list(reversed(facts)))
        put_facts(s, "https://other.example/fhir", [admission("x", "p000", dt.date(2026, 1, 1))])
    for size in (1, 4, 23, 100):
        seen = walk(store, SERVER, size)
        assert [p for p, _ in seen] == patients
        assert [len(facts) for _, facts in seen] == [i % 3 + 1 for i in range(len(patients))]
        assert all({f.patient_id for f in facts} == {p} for p, facts in seen)
    with store.session(read_only=True) as s:  # the base is normalised: a trailing slash is the same server
        assert [p for p, _ in patient_facts_after(s, SERVER + "/", None, 3)] == patients[:3]


def test_only_open_cases_exclude(store: Store, make_case: Callable[..., Case]) -> None:
    def case(case_id: str, patient: str, status: CaseStatus) -> Case:
        closed = status in (CaseStatus.CLOSED, CaseStatus.CANCELLED)
        period = Period(start=dt.date(2026, 1, 1), end=dt.date(2026, 2, 1) if closed else None)
        return make_case(case_id, status=status, period=period, patient=Party(kind=PartyKind.PATIENT, id=patient))

    with store.session() as s:
        save_case(s, case("c1", "referred", CaseStatus.REFERRED))
        save_case(s, case("c2", "on-hold", CaseStatus.ON_HOLD))
        save_case(s, case("c3", "closed", CaseStatus.CLOSED))
        save_case(s, case("c4", "cancelled", CaseStatus.CANCELLED))
    with store.session(read_only=True) as s:
        found = open_case_patient_ids(s, ["referred", "on-hold", "closed", "cancelled", "nobody"])
        assert found == {"referred", "on-hold"}
        assert open_case_patient_ids(s, []) == set()


def test_an_id_the_server_gives_someone_else_is_not_our_patient_of_that_id(
    store: Store, make_case: Callable[..., Case]
) -> None:
    # "ann" was pushed and the server created her Patient as "7"; the server's "ann" is someone else.
    # Matched against our ids as well, that other patient read as in Ann's open case (a CDS card
    # showed them her case; screening left them out). "bob" was found on the server under his own id,
    # "cy" was never pushed: each is their own id. "9" names the server's Patient of "dee", not our "9".
    def case(case_id: str, patient: str) -> Case:
        return make_case(case_id, status=CaseStatus.ACTIVE, patient=Party(kind=PartyKind.PATIENT, id=patient))

    def patient(key: str, server_id: str) -> LedgerEntry:
        return LedgerEntry(server_base=SERVER, resource_type="Patient", key=key, server_id=server_id)

    with store.session() as s:
        for n, pid in enumerate(("ann", "bob", "cy", "dee", "9")):
            save_case(s, case(f"c{n}", pid))
        put_ledger(s, [patient("ann", "7"), patient("bob", "bob"), patient("dee", "9")])
    with store.session(read_only=True) as s:
        assert open_case_patient_ids(s, ["ann"], server_base=SERVER) == set()
        assert open_case_patient_ids(s, ["7", "bob", "cy", "9"], server_base=SERVER) == {"7", "bob", "cy", "9"}
        assert ehr_patient_keys(s, [SERVER + "/"], ["ann", "7", "bob", "cy", "9"]) == {
            "ann": "7",
            "bob": "bob",
            "cy": "cy",
            "dee": "9",
        }
        # Another server's ledger says nothing of this one's ids.
        assert open_case_patient_ids(s, ["ann", "7"], server_base="https://other.example/fhir") == {"ann"}


def test_a_slice_replaces_its_own_candidates_only_and_the_list_pages_by_score(store: Store) -> None:
    with store.session() as s:
        replace_candidates(s, SERVER, ["a", "b", "c"], [candidate("a", 2), candidate("b", 5), candidate("c", 5)])
        replace_candidates(s, SERVER, ["d", "e"], [candidate("d", 3)])
    with store.session() as s:  # the next run: "b" no longer eligible, "a" higher; "d" is in another slice
        replace_candidates(s, SERVER, ["a", "b", "c"], [candidate("a", 9), candidate("c", 5)])
    with store.session(read_only=True) as s:
        ranked = [(c.patient_id, c.score) for c in list_candidates(s, SERVER, limit=10)]
        assert ranked == [("a", 9), ("c", 5), ("d", 3)]
        assert [c.patient_id for c in list_candidates(s, SERVER, limit=1, offset=1)] == ["c"]
        assert count_candidates(s, SERVER) == 3
        assert count_candidates(s, SERVER, min_score=4) == 2
        assert count_candidates(s, "https://other.example/fhir") == 0
        assert list_candidates(s, SERVER)[0].reasons[0]["reason"] == "frequent-ed-visits"
    with store.session() as s:
        mark_enrolled(s, SERVER, "c", "case-c")
    with store.session(read_only=True) as s:
        assert {c.patient_id: c.case_id for c in list_candidates(s, SERVER)} == {"a": None, "c": "case-c", "d": None}


def test_candidates_of_patients_with_no_fact_left_are_forgotten_on_that_server_only(store: Store) -> None:
    other = "https://other.example/fhir"
    with store.session() as s:
        put_facts(s, SERVER, [admission("e1", "kept", ON)])
        replace_candidates(s, SERVER, ["kept", "gone"], [candidate("kept", 3), candidate("gone", 2)])
        replace_candidates(s, other, ["gone"], [candidate("gone", 2).model_copy(update={"server_base": other})])
    with store.session() as s:
        forget_candidates_without_facts(s, SERVER)
    with store.session(read_only=True) as s:
        assert [c.patient_id for c in list_candidates(s, SERVER)] == ["kept"]
        assert [c.patient_id for c in list_candidates(s, other)] == ["gone"]  # not this server's to forget


def test_the_candidates_in_no_open_case_are_those_open_cases_leave_out_paged_and_counted(
    store: Store, make_case: Callable[..., Case]
) -> None:
    """The list offered to enrol (and enrolment's top N) filters in SQL what ``open_case_patient_ids``
    says, with its reading of ids through the ledger; paging and the count agree with it."""

    def case(case_id: str, patient: str, status: CaseStatus = CaseStatus.ACTIVE) -> Case:
        closed = status in (CaseStatus.CLOSED, CaseStatus.CANCELLED)
        period = Period(start=dt.date(2026, 1, 1), end=dt.date(2026, 2, 1) if closed else None)
        return make_case(case_id, status=status, period=period, patient=Party(kind=PartyKind.PATIENT, id=patient))

    def patient(key: str, server_id: str) -> LedgerEntry:
        return LedgerEntry(server_base=SERVER, resource_type="Patient", key=key, server_id=server_id)

    ids = ["ann", "7", "bob", "cy", "9", "done", "free"]
    with store.session() as s:
        for n, pid in enumerate(("ann", "bob", "cy", "dee", "9")):
            save_case(s, case(f"c{n}", pid))
        save_case(s, case("c-done", "done", CaseStatus.CLOSED))
        put_ledger(s, [patient("ann", "7"), patient("bob", "bob"), patient("dee", "9")])
        replace_candidates(s, SERVER, ids, [candidate(p, 10 - n) for n, p in enumerate(ids)])
    with store.session(read_only=True) as s:
        busy = open_case_patient_ids(s, ids, server_base=SERVER)
        assert busy == {"7", "bob", "cy", "9"}
        free = [c.patient_id for c in list_candidates(s, SERVER, free_only=True)]
        assert free == [p for p in ids if p not in busy] == ["ann", "done", "free"]
        assert [c.patient_id for c in list_candidates(s, SERVER, limit=1, offset=1, free_only=True)] == ["done"]
        assert count_candidates(s, SERVER, free_only=True) == 3
        assert count_candidates(s, SERVER, min_score=5, free_only=True) == 2
        assert count_candidates(s, SERVER) == len(ids)  # unfiltered: every candidate of the ranking
        assert len(list_candidates(s, None, free_only=True)) == 3


def test_the_watermark_of_a_group_with_the_longest_id_is_kept(store: Store) -> None:
    """A FHIR id is up to 64 characters, and the key ``identify:Group/<id>`` was longer than the row's
    key column: on PostgreSQL a screening of such a Group read everything, ranked, and then failed at
    its very end writing its watermark (SQLite does not check the length), so every run read it all
    again and failed again. A key too long for the column is named by a digest of the Group's id."""
    from fhir_cm.identify import watermark_key

    groups = ["g" * 64, "g" * 63 + "h", "short-group"]
    with store.session() as s:
        for n, group in enumerate(groups):
            set_watermark(s, SERVER, watermark_key(group), f"2026-06-01T10:00:0{n}Z")
    with store.session(read_only=True) as s:
        kept = [get_watermark(s, SERVER, watermark_key(group)) for group in groups]
    assert kept == ["2026-06-01T10:00:00Z", "2026-06-01T10:00:01Z", "2026-06-01T10:00:02Z"]
    assert watermark_key("short-group").endswith(":Group/short-group")  # a readable key where it fits


def test_candidates_among_many_patients_are_paged_as_the_whole_list_is(store: Store) -> None:
    """A Group's run lists its members' candidates: more members than one query's ids, read a slice
    at a time, give the page the list would give with only them in it (score, then id)."""
    ids = [f"p{i:05d}" for i in range(2500)]
    with store.session() as s:
        replace_candidates(s, SERVER, ids, [candidate(p, i % 7) for i, p in enumerate(ids)])
    among = set(ids[::2]) | {"not-a-candidate"}
    expected = sorted(((i % 7, p) for i, p in enumerate(ids) if p in among), key=lambda c: (-c[0], c[1]))
    with store.session(read_only=True) as s:
        for offset, limit in ((0, 5), (10, 300), (1240, 50)):
            page = list_candidates(s, SERVER, limit=limit, offset=offset, min_score=1, among=among)
            assert [(c.score, c.patient_id) for c in page] == [c for c in expected if c[0] >= 1][
                offset : offset + limit
            ]
        assert list_candidates(s, SERVER, among=[]) == []


def test_a_candidate_keeps_the_scope_of_the_ranking_that_made_it(store: Store) -> None:
    """A supervisor could not tell a clinic's candidates from the whole population's: the row said not
    which ranking made it. Each row keeps its scope, replaced with it by the next ranking of the patient."""
    group = "g" * 64  # the longest Group id FHIR allows
    with store.session() as s:
        replace_candidates(s, SERVER, ["a", "b"], [candidate("a", 3).model_copy(update={"scope": "system"})])
        replace_candidates(s, SERVER, ["b"], [candidate("b", 5).model_copy(update={"scope": f"Group/{group}"})])
    with store.session(read_only=True) as s:
        assert {c.patient_id: c.scope for c in list_candidates(s, SERVER)} == {"a": "system", "b": f"Group/{group}"}
    with store.session() as s:
        replace_candidates(s, SERVER, ["a", "b"], [candidate("b", 5).model_copy(update={"scope": "system"})])
    with store.session(read_only=True) as s:
        assert {c.patient_id: c.scope for c in list_candidates(s, SERVER)} == {"b": "system"}


def test_a_groups_members_are_kept_by_what_changed_per_server_and_group(store: Store) -> None:
    """A Group's run keeps the Patients it listed, so the next run can tell who joined since; more than
    one statement's worth of ids, and the members who left, are kept exactly."""
    many = [f"p{n:05d}" for n in range(2500)]
    with store.session() as s:
        keep_group_members(s, SERVER, "north", many, set())
        keep_group_members(s, SERVER, "south", ["p00001"], set())
        keep_group_members(s, "https://other.example/fhir", "north", ["elsewhere"], set())
    with store.session() as s:
        known = screened_group_members(s, SERVER + "/", "north")
        assert known == set(many)
        keep_group_members(s, SERVER, "north", [*many[1000:], "new"], known)
    with store.session(read_only=True) as s:
        assert screened_group_members(s, SERVER, "north") == {*many[1000:], "new"}
        assert screened_group_members(s, SERVER, "south") == {"p00001"}
        assert screened_group_members(s, "https://other.example/fhir", "north") == {"elsewhere"}
        assert screened_group_members(s, SERVER, "east") == set()
