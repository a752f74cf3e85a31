"""Cases: saved whole, read back equal, filtered by the columns beside the JSON, revisions that count changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from fhir_cm.domain import (
    AssessmentDomain,
    CareSetting,
    Case,
    CaseStatus,
    Contact,
    ContactMode,
    DischargeDisposition,
    Goal,
    Need,
    Party,
    PartyKind,
    ProgrammeType,
    Referral,
    ReferralKind,
    Stay,
    TeamMember,
    TeamRole,
)
from fhir_cm.store import (
    OutboxStatus,
    CaseCache,
    StaleRevision,
    Store,
    cases_of_patients_with_several,
    get_case,
    get_case_record,
    get_case_records,
    list_cases,
    list_outbox,
    open_store,
    save_case,
)
from fhir_cm.store._cases import _CHUNK
from tests.store.concurrency import run_together

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def full_case(make_case: Callable[..., Case]) -> Case:
    need = Need(
        id="need-1", domain=AssessmentDomain.FUNCTIONAL, finding="Needs help with stairs", recorded=dt.date(2024, 3, 2)
    )
    hospital = Stay(
        id="stay-1",
        setting=CareSetting.ACUTE_HOSPITAL,
        start=dt.date(2024, 3, 3),
        end=dt.date(2024, 3, 9),
        discharge_disposition=DischargeDisposition.SKILLED_NURSING,
    )
    return make_case(
        plan_summary="Regain mobility; Ünïcode ✓ survives",
        needs=[need],
        goals=[
            Goal(id="goal-1", description="Walk 200 m", self_care=True, due=dt.date(2024, 6, 1), addresses=["need-1"])
        ],
        referrals=[
            Referral(
                id="ref-1", kind=ReferralKind.REHABILITATION, service="Physio 2x/week", authored=dt.date(2024, 3, 4)
            )
        ],
        team=[TeamMember(id="tm-1", role=TeamRole.NURSE, party=Party(kind=PartyKind.PRACTITIONER, id="nurse-7"))],
        contacts=[Contact(id="c-1", date=dt.date(2024, 3, 5), mode=ContactMode.PHONE, note="called daughter")],
        stays=[hospital],
    )


def test_a_saved_case_reads_back_equal(store: Store, make_case: Callable[..., Case]) -> None:
    case = full_case(make_case)
    with store.session() as s:
        assert save_case(s, case, now=NOW) == 1
    with store.session(read_only=True) as s:
        assert get_case(s, case.id) == case
        record = get_case_record(s, case.id)
    assert record is not None
    assert (record.case, record.revision, record.created_at, record.updated_at) == (case, 1, NOW, NOW)


def test_records_of_several_cases_read_in_one_call(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        save_case(s, make_case("a"), now=NOW)
        save_case(s, make_case("b"), now=NOW)
        save_case(s, make_case("b", plan_summary="changed"), now=NOW)
    with store.session(read_only=True) as s:
        records = get_case_records(s, ["b", "a", "missing", "b"])
        assert get_case_records(s, []) == {}
    assert {k: (r.case.id, r.revision) for k, r in records.items()} == {"a": ("a", 1), "b": ("b", 2)}


@pytest.mark.parametrize("cached", [False, True])
def test_the_cases_of_patients_with_several_are_read_by_patient(
    store: Store, make_case: Callable[..., Case], cached: bool
) -> None:
    """Where the outcomes look for a readmission into another case: every case, any programme, of the
    patients asked about who have more than one; a patient with one case reads nothing."""
    with store.session() as s:
        for case_id, patient, programme in [
            ("a1", "p-a", ProgrammeType.HEALTH_CARE),
            ("a2", "p-a", ProgrammeType.REHABILITATION),
            ("b1", "p-b", ProgrammeType.HEALTH_CARE),
            ("c1", "p-c", ProgrammeType.HEALTH_CARE),
            ("c2", "p-c", ProgrammeType.HEALTH_CARE),
        ]:
            save_case(s, make_case(case_id, patient=Party(kind=PartyKind.PATIENT, id=patient), programme=programme))
    cache = CaseCache(10) if cached else None
    # Few patients asked (by id), and many (past one query's worth: the patients with several of the
    # whole table, then those asked): the same cases either way.
    many = ["p-b", "p-a", "nobody", *(f"p-x{n}" for n in range(_CHUNK))]
    with store.session(read_only=True) as s:
        found = cases_of_patients_with_several(s, ["p-b", "p-a", "nobody"], cache=cache)
        found_of_many = cases_of_patients_with_several(s, many, cache=cache)
        assert cases_of_patients_with_several(s, [], cache=cache) == []
    assert sorted((r.case.id, r.case.patient.id) for r in found) == [("a1", "p-a"), ("a2", "p-a")]
    assert sorted((r.case.id, r.case.patient.id) for r in found_of_many) == [("a1", "p-a"), ("a2", "p-a")]


def test_unknown_case_is_none(store: Store) -> None:
    with store.session(read_only=True) as s:
        assert get_case(s, "nope") is None
        assert get_case_record(s, "nope") is None


def test_each_change_raises_the_revision_and_an_unchanged_save_does_nothing(
    store: Store, make_case: Callable[..., Case]
) -> None:
    later = NOW + dt.timedelta(hours=1)
    with store.session() as s:
        assert save_case(s, make_case(), now=NOW) == 1
        assert save_case(s, make_case(), now=later) == 1
        assert save_case(s, make_case(plan_summary="changed"), now=later) == 2
    with store.session() as s:
        record = get_case_record(s, "case-1")
        assert record is not None
        assert (record.revision, record.created_at, record.updated_at) == (2, NOW, later)
        assert [i.revision for i in list_outbox(s)] == [2]


def test_expected_revision_guards_against_lost_updates(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        assert save_case(s, make_case(), expected_revision=0) == 1
    with pytest.raises(StaleRevision, match="revision 1, not 0"), store.session() as s:
        save_case(s, make_case(plan_summary="second writer"), expected_revision=0)
    with store.session() as s:
        assert save_case(s, make_case(plan_summary="ok"), expected_revision=1) == 2
    with pytest.raises(StaleRevision), store.session() as s:
        save_case(s, make_case(case_id="new"), expected_revision=3)


def test_list_filters_by_status_manager_programme_and_patient(store: Store, make_case: Callable[..., Case]) -> None:
    practitioner = lambda pid: Party(kind=PartyKind.PRACTITIONER, id=pid)
    patient = lambda pid: Party(kind=PartyKind.PATIENT, id=pid)
    closed_period = {"start": dt.date(2024, 1, 1), "end": dt.date(2024, 2, 1)}
    cases = [
        make_case("a", case_manager=practitioner("cm-1"), patient=patient("p-1")),
        make_case("b", case_manager=practitioner("cm-2"), programme=ProgrammeType.SOCIAL_WORK, patient=patient("p-2")),
        make_case("c", case_manager=practitioner("cm-1"), status=CaseStatus.ON_HOLD, patient=patient("p-2")),
        make_case("d", case_manager=None, status=CaseStatus.CLOSED, period=closed_period, patient=patient("p-3")),
    ]
    with store.session() as s:
        for case in reversed(cases):
            save_case(s, case)
    ids = lambda found: [c.id for c in found]
    with store.session(read_only=True) as s:
        assert ids(list_cases(s)) == ["a", "b", "c", "d"]
        assert ids(list_cases(s, status=CaseStatus.ACTIVE)) == ["a", "b"]
        assert ids(list_cases(s, status=[CaseStatus.ON_HOLD, CaseStatus.CLOSED])) == ["c", "d"]
        assert ids(list_cases(s, case_manager="cm-1")) == ["a", "c"]
        assert ids(list_cases(s, case_manager="cm-1", status=CaseStatus.ACTIVE)) == ["a"]
        assert ids(list_cases(s, programme=ProgrammeType.SOCIAL_WORK)) == ["b"]
        assert ids(list_cases(s, patient="p-2")) == ["b", "c"]
        assert ids(list_cases(s, limit=2, offset=1)) == ["b", "c"]
        assert list_cases(s, status=[]) == []


def test_filter_columns_follow_the_case(store: Store, make_case: Callable[..., Case]) -> None:
    case = make_case()
    with store.session() as s:
        save_case(s, case)
    case.change_status(CaseStatus.CLOSED, dt.date(2024, 4, 1), reason="goals met")
    with store.session() as s:
        save_case(s, case.model_copy(update={"case_manager": Party(kind=PartyKind.PRACTITIONER, id="cm-9")}))
    with store.session(read_only=True) as s:
        assert list_cases(s, status=CaseStatus.ACTIVE) == []
        assert [c.status for c in list_cases(s, status=CaseStatus.CLOSED, case_manager="cm-9")] == [CaseStatus.CLOSED]


def test_concurrent_first_saves_of_one_case_all_land(store_url: str, make_case: Callable[..., Case]) -> None:
    """Writers racing to create the same case: one creates it, the others update it, none fails."""
    workers = 4

    def work(n: int, go: Callable[[], object]) -> None:
        with open_store(store_url) as mine:
            go()
            with mine.session() as s:
                save_case(s, make_case(plan_summary=f"writer {n}"))

    run_together(workers, work)
    with open_store(store_url) as store, store.session(read_only=True) as s:
        record = get_case_record(s, "case-1")
        assert record is not None and record.revision == workers
        assert [(i.revision, i.status) for i in list_outbox(s)] == [(workers, OutboxStatus.PENDING)]
