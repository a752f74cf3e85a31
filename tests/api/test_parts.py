"""Caseload and outcomes from parts kept per case equal the figures recomputed from every case.

The API keeps each case's part of the figures by revision and recomputes only the parts of cases
that changed (``fhir_cm.api._parts``). These tests compare its answers with ``compute_caseload`` and
``compute_outcomes`` over every stored case — first, after cases change, and after one is added.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api._access import can_see
from fhir_cm.api._auth import Principal
from fhir_cm.caseload import caseload_part, compute_caseload
from fhir_cm.config import Settings
from fhir_cm.domain import (
    Case,
    CareSetting,
    CaseStatus,
    Contact,
    ContactMode,
    Party,
    PartyKind,
    Period,
    ProgrammeType,
    Stay,
    StayStatus,
    TeamMember,
    TeamRole,
)
from fhir_cm.jobs import caseload_page
from fhir_cm.outcomes import compute_outcomes, outcome_parts, outcome_timeline
from fhir_cm.store import ApiRole, Store, create_api_key, list_cases, save_case
from fhir_cm.synthetic import generate_cases
from tests.api.conftest import TODAY, Keys, bearer

PERIOD = {"from": "2024-07-01", "to": "2025-06-30"}


def _expected(store: Store, programme: ProgrammeType | None = None) -> tuple[Any, Any]:
    with store.session(read_only=True) as s:
        cases = list_cases(s)
    caseload = [m.model_dump(mode="json") for m in compute_caseload(cases, on=TODAY, limit=20)]
    outcomes = [
        p.model_dump(mode="json")
        for p in compute_outcomes(
            cases,
            start=dt.date(2024, 7, 1),
            end=dt.date(2025, 6, 30),
            today=TODAY,
            programmes=[programme] if programme else None,
        )
    ]
    return caseload, outcomes


def _answers(client: TestClient, key: str) -> tuple[Any, Any]:
    caseload = client.get("/api/v1/caseload", headers=bearer(key))
    outcomes = client.get("/api/v1/outcomes", params=PERIOD, headers=bearer(key))
    assert caseload.status_code == outcomes.status_code == 200
    return caseload.json()["managers"], outcomes.json()["programmes"]


def test_the_kept_parts_give_the_figures_of_every_case(client: TestClient, keys: Keys, api_store: Store) -> None:
    cases = list(generate_cases(60, seed=7, today=TODAY))
    with api_store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
    assert _answers(client, keys.supervisor) == _expected(api_store)

    # Close one open case, record a face-to-face contact on another, add a case: only these change.
    still_open = [c for c in cases if c.is_open]
    closing, visited = still_open[0].model_copy(deep=True), still_open[1].model_copy(deep=True)
    closing.change_status(CaseStatus.CLOSED, TODAY, "goals met")
    visited.contacts = [
        *visited.contacts,
        Contact(id="visit-today", date=TODAY, mode=ContactMode.FACE_TO_FACE, note="home visit"),
    ]
    added = next(iter(generate_cases(1, seed=99, today=TODAY)))
    with api_store.session() as s:
        for case in (closing, visited, added):
            save_case(s, case, enqueue=False)
    caseload, outcomes = _answers(client, keys.supervisor)
    assert (caseload, outcomes) == _expected(api_store)
    seen = {c["case_id"] for m in caseload for c in m["cases"]}
    assert closing.id not in seen
    assert (added.id in seen) is added.is_open


def test_a_programme_supervisor_gets_the_figures_of_that_programme(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    with api_store.session() as s:
        for case in generate_cases(40, seed=11, today=TODAY):
            save_case(s, case, enqueue=False)
    with api_store.session(read_only=True) as s:
        mine = [c for c in list_cases(s) if c.programme is ProgrammeType.HEALTH_CARE]
    outcomes = client.get("/api/v1/outcomes", params=PERIOD, headers=bearer(keys.supervisor_hc)).json()["programmes"]
    expected = compute_outcomes(mine, start=dt.date(2024, 7, 1), end=dt.date(2025, 6, 30), today=TODAY, programmes=None)
    assert outcomes == [p.model_dump(mode="json") for p in expected]


def _a_discharge_readmitted_five_days_on(api_store: Store) -> tuple[Case, dt.date]:
    """Forty synthetic cases stored; one with a discharge in the period at least ten days before today,
    and the day five days after it, for a readmission to be recorded in another case."""
    cases = list(generate_cases(40, seed=7, today=TODAY))
    with api_store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
    period = {"start": dt.date(2024, 7, 1), "end": dt.date(2025, 6, 30), "today": TODAY}
    first, end = next(
        (c, d.end)
        for c in cases
        for d in outcome_parts(c, **period).open_discharges
        if d.end is not None and d.end <= TODAY - dt.timedelta(days=10)
    )
    return first, end + dt.timedelta(days=5)


def _another_programme(case: Case) -> ProgrammeType:
    return (
        ProgrammeType.REHABILITATION
        if case.programme is not ProgrammeType.REHABILITATION
        else ProgrammeType.HEALTH_CARE
    )


def test_a_readmission_into_a_case_added_later_is_counted_for_the_kept_part_of_the_first(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """The first case's part is kept (its revision did not move) while the patient's new case, of another
    programme, holds the readmission: the answer counts it, as the figures from every case do."""
    first, again = _a_discharge_readmitted_five_days_on(api_store)
    before = _answers(client, keys.supervisor)[1]
    later = Case(
        id="later-case",
        programme=_another_programme(first),
        status=CaseStatus.ACTIVE,
        period=Period(start=again + dt.timedelta(days=2)),
        patient=first.patient,
        stays=[Stay(id="again", setting=CareSetting.ACUTE_HOSPITAL, status=StayStatus.IN_PROGRESS, start=again)],
    )
    with api_store.session() as s:
        save_case(s, later, enqueue=False)
    after = _answers(client, keys.supervisor)
    assert after == _expected(api_store)
    readmitted = {p["programme"]: p["readmissions_30d"] for p in after[1]}
    assert readmitted[first.programme.value] == 1 + next(
        p["readmissions_30d"] for p in before if p["programme"] == first.programme.value
    )


def test_a_readmission_recorded_in_a_closed_case_changes_the_figures_though_no_part_changed(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """The hospital records the readmission in another case of the patient, one closed before it: a stay
    after a case's closure is not that case's, so no case's part of the figures changes — yet the first
    case's discharge is now readmitted. The figures kept from the same parts must not be given again."""
    first, again = _a_discharge_readmitted_five_days_on(api_store)
    closed = Case(
        id="closed-case",
        programme=_another_programme(first),
        status=CaseStatus.ACTIVE,
        period=Period(start=again - dt.timedelta(days=100)),
        patient=first.patient,
    )
    closed.change_status(CaseStatus.CLOSED, again - dt.timedelta(days=1), "moved away")
    with api_store.session() as s:
        save_case(s, closed, enqueue=False)
    before = _answers(client, keys.supervisor)[1]
    readmitted = closed.model_copy(
        update={
            "stays": [Stay(id="again", setting=CareSetting.ACUTE_HOSPITAL, status=StayStatus.IN_PROGRESS, start=again)]
        }
    )
    assert outcome_timeline(readmitted, today=TODAY) == outcome_timeline(closed, today=TODAY), "no part changes"
    with api_store.session() as s:
        save_case(s, readmitted, enqueue=False)
    after = _answers(client, keys.supervisor)
    assert after == _expected(api_store)
    assert {p["programme"]: p["readmissions_30d"] for p in after[1]}[first.programme.value] == 1 + next(
        p["readmissions_30d"] for p in before if p["programme"] == first.programme.value
    )


def test_a_transfer_into_a_case_added_later_takes_the_discharge_off_the_kept_part(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """A supervisor's figures: the first case's stay ended with the hospital sending the person on to
    another (``other-hcf``); the hospital that took them the next day is recorded in a case of another
    programme opened for the same patient. The kept part of the first case still holds the stay, but
    its end was no discharge: the answer counts one discharge fewer, none to follow up."""
    d = dt.date(2025, 3, 5)
    first = Case(
        id="first-case",
        programme=ProgrammeType.HEALTH_CARE,
        status=CaseStatus.ACTIVE,
        period=Period(start=dt.date(2025, 2, 1)),
        patient={"kind": "patient", "id": "p-moved"},  # type: ignore[arg-type]
        stays=[
            Stay(
                id="sent-on",
                setting=CareSetting.ACUTE_HOSPITAL,
                status=StayStatus.FINISHED,
                start=d - dt.timedelta(days=3),
                end=d,
                discharge_disposition="other-hcf",  # type: ignore[arg-type]
            )
        ],
    )
    with api_store.session() as s:
        save_case(s, first, enqueue=False)

    def health_care() -> Any:
        figures = next(p for p in _answers(client, keys.supervisor)[1] if p["programme"] == "health-care")
        return figures["hospital_discharges"], figures["discharges_without_follow_up"]

    assert health_care() == (1, 1)
    taken_in = Case(
        id="taken-in",
        programme=ProgrammeType.REHABILITATION,
        status=CaseStatus.ACTIVE,
        period=Period(start=d + dt.timedelta(days=1)),
        patient=first.patient,
        stays=[
            Stay(
                id="there",
                setting=CareSetting.ACUTE_HOSPITAL,
                status=StayStatus.IN_PROGRESS,
                start=d + dt.timedelta(days=1),
            )
        ],
    )
    with api_store.session() as s:
        save_case(s, taken_in, enqueue=False)
    assert health_care() == (0, 0)
    assert _answers(client, keys.supervisor)[1] == _expected(api_store)[1]


def _caseload_of(cases: list[Case], principal: Principal, day: dt.date) -> Any:
    """The caseload ``principal`` gets on ``day`` recomputed from the cases they may see today."""
    visible = [c for c in cases if can_see(principal, c, TODAY)]
    own = principal.practitioner_id if principal.role is ApiRole.CASE_MANAGER else None
    parts = [p for c in visible if (p := caseload_part(c, day)) is not None]
    return caseload_page(parts, day=day, limit=20, case_manager=own).model_dump(mode="json")["managers"]


def _handed_over(case: Case, to: Party, day: dt.date) -> Case:
    """``case`` handed to ``to`` on ``day``: its manager until then leaves the team the day before."""
    assert case.case_manager is not None
    team = [
        TeamMember(id="before", role=TeamRole.CASE_MANAGER, party=case.case_manager, end=day - dt.timedelta(days=1)),
        TeamMember(id="after", role=TeamRole.CASE_MANAGER, party=to, start=day),
    ]
    return case.model_copy(update={"case_manager": to, "team": team})


@dataclasses.dataclass
class _Team:
    """Stored cases, one handed from its manager to another a month ago, and a key for every caller."""

    cases: list[Case]
    handed: Case
    handover: dt.date
    callers: list[tuple[str, Principal]]


def _team(api_store: Store, keys: Keys) -> _Team:
    cases = list(generate_cases(60, seed=17, today=TODAY))
    managed = [c for c in cases if c.is_open and c.case_manager is not None]
    assert len(managed) >= 3
    handover = TODAY - dt.timedelta(days=30)
    taker = managed[1].case_manager
    assert taker is not None
    handed = cases[cases.index(managed[0])] = _handed_over(managed[0], taker, handover)
    with api_store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
        managers = [
            (create_api_key(s, name=f"cm-{i}", role=ApiRole.CASE_MANAGER, practitioner_id=pid)[1], pid)
            for i, pid in enumerate(sorted({m.id for c in cases for m in _local_practitioners(c)}))
        ]
    callers = [
        (keys.supervisor, Principal(id="s", name="s", role=ApiRole.SUPERVISOR)),
        (keys.supervisor_hc, Principal(id="s", name="s", role=ApiRole.SUPERVISOR, programme=ProgrammeType.HEALTH_CARE)),
        (keys.supervisor_sw, Principal(id="s", name="s", role=ApiRole.SUPERVISOR, programme=ProgrammeType.SOCIAL_WORK)),
        *[(key, Principal(id="c", name="c", role=ApiRole.CASE_MANAGER, practitioner_id=pid)) for key, pid in managers],
    ]
    return _Team(cases, handed, handover, callers)


def test_every_caller_gets_the_caseload_of_the_cases_they_may_see_from_one_view(
    client: TestClient, keys: Keys, api_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caseload is one view for every caller of a day, each taking the parts of the cases they may see:
    the same answer as recomputing over those cases, for supervisors of every programme or one, and for
    case managers — one whose case went to another (it is no longer theirs to see, even on a day it was
    theirs), one on a team only. Each case's part is worked out once for all of them."""
    team = _team(api_store, keys)
    worked = _counting(monkeypatch, "caseload", "caseload_part")
    before = team.handover - dt.timedelta(days=1)
    for day in (TODAY, before):
        for key, principal in team.callers:
            answer = client.get("/api/v1/caseload", params={"on": day.isoformat()}, headers=bearer(key))
            assert answer.status_code == 200
            assert answer.json()["managers"] == _caseload_of(team.cases, principal, day), (principal, day)
    assert worked == dict.fromkeys((c.id for c in team.cases), 2)  # once a day for every caller
    assert team.handed.team[0].party.id != team.handed.team[1].party.id
    first_manager = next(key for key, p in team.callers if p.practitioner_id == team.handed.team[0].party.id)
    then = client.get("/api/v1/caseload", params={"on": before.isoformat()}, headers=bearer(first_manager)).json()
    assert team.handed.id not in {c["case_id"] for m in then["managers"] for c in m["cases"]}


def test_every_caller_gets_the_outcomes_of_the_cases_they_may_see_from_one_view(
    client: TestClient, keys: Keys, api_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outcomes of a period are one view for every caller asking for it, each taking the parts of the
    cases they may see, of the programme they ask for: the figures recomputed over those cases, each
    case's part worked out once for all of them."""
    team = _team(api_store, keys)
    worked = _counting(monkeypatch, "outcomes", "outcome_timeline")
    period = {"start": dt.date(2024, 7, 1), "end": dt.date(2025, 6, 30), "today": TODAY}
    for programme in (None, ProgrammeType.HEALTH_CARE):
        asked = {**PERIOD, **({"programme": programme.value} if programme else {})}
        for key, principal in team.callers:
            answer = client.get("/api/v1/outcomes", params=asked, headers=bearer(key))
            if programme is not None and principal.programme not in (None, programme):
                assert answer.status_code == 403  # a programme out of the supervisor's reach
                continue
            assert answer.status_code == 200
            visible = [c for c in team.cases if can_see(principal, c, TODAY)]
            expected = compute_outcomes(visible, **period, programmes=[programme] if programme else None)
            assert answer.json()["programmes"] == [p.model_dump(mode="json") for p in expected], principal
    assert worked == dict.fromkeys((c.id for c in team.cases), 1)


def test_a_period_asked_for_the_first_time_goes_through_no_case_again(
    client: TestClient, keys: Keys, api_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each case's outcome timeline (its part of any period) is worked out once per revision and day: the
    figures of a period asked for the first time are taken from the timelines kept, and after a change
    only the case changed is gone through again — the figures those of every case, each time."""
    cases = list(generate_cases(40, seed=7, today=TODAY))
    with api_store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
    worked = _counting(monkeypatch, "outcomes", "outcome_timeline")
    periods = [
        {"from": "2024-07-01", "to": "2025-06-30"},
        {"from": "2025-01-01"},
        {"to": "2024-12-31"},
        {"from": "2023-03-01", "to": "2023-03-31"},
        {},
    ]

    def answers_match(now: list[Case]) -> None:
        for period in periods:
            answer = client.get("/api/v1/outcomes", params=period, headers=bearer(keys.supervisor))
            assert answer.status_code == 200
            bounds = {
                name: dt.date.fromisoformat(period[asked]) if asked in period else None
                for name, asked in (("start", "from"), ("end", "to"))
            }
            expected = compute_outcomes(now, **bounds, today=TODAY)
            assert answer.json()["programmes"] == [p.model_dump(mode="json") for p in expected], period

    answers_match(cases)
    assert worked == dict.fromkeys((c.id for c in cases), 1)
    worked.clear()
    closing = next(c for c in cases if c.is_open).model_copy(deep=True)
    closing.change_status(CaseStatus.CLOSED, TODAY, "goals met")
    with api_store.session() as s:
        save_case(s, closing, enqueue=False)
    answers_match([closing if c.id == closing.id else c for c in cases])
    assert worked == {closing.id: 1}


def _counting(monkeypatch: pytest.MonkeyPatch, route_name: str, name: str) -> Counter[str]:
    """How many times each case's part is worked out by the route ``route_name`` (its function ``name``,
    called with the case first), from now on."""
    route = importlib.import_module(f"fhir_cm.api.routes.{route_name}")
    worked: Counter[str] = Counter()
    real = getattr(route, name)

    def counted(case: Case, *args: Any, **kwargs: Any) -> Any:
        worked[case.id] += 1
        return real(case, *args, **kwargs)

    monkeypatch.setattr(route, name, counted)
    return worked


def _local_practitioners(case: Case) -> list[Party]:
    named = [m.party for m in case.team]
    if case.case_manager is not None:
        named.append(case.case_manager)
    return [p for p in named if p.server is None and p.kind is PartyKind.PRACTITIONER]


def test_the_days_caseload_and_outcomes_are_gone_through_at_start_up(
    api_store: Store, settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first caller of a new process finds every case's part of today's caseload and of the outcomes
    of all time (what the console shows first) kept: the start-up went through the cases (10,000 took
    about a second for that first caller), a supervisor of one programme taking theirs from them."""
    from fhir_cm.api import create_app

    with api_store.session() as s:
        for case in generate_cases(6, seed=3, today=TODAY):
            save_case(s, case)
    app = create_app(settings, store=api_store, clock=lambda: TODAY)
    with TestClient(app) as client:
        assert app.state.facade_ready.wait(60)
        worked = [
            _counting(monkeypatch, "caseload", "caseload_part"),
            _counting(monkeypatch, "outcomes", "outcome_timeline"),
        ]
        for key in (keys.supervisor, keys.supervisor_hc, keys.cm1, keys.cm2):
            for route in ("caseload", "outcomes"):
                assert client.get(f"/api/v1/{route}", headers=bearer(key)).status_code == 200
        assert worked == [Counter(), Counter()]


def test_a_supervisors_caseload_of_another_programme_is_empty_and_goes_through_no_case(
    client: TestClient, keys: Keys, api_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = _team(api_store, keys)
    assert any(c.programme is ProgrammeType.SOCIAL_WORK and c.is_open for c in team.cases)
    worked = _counting(monkeypatch, "caseload", "caseload_part")
    answer = client.get("/api/v1/caseload", params={"programme": "social-work"}, headers=bearer(keys.supervisor_hc))
    assert answer.status_code == 200
    assert (answer.json()["managers"], answer.json()["unreadable"]) == ([], 0)
    assert worked == Counter()


def test_a_programme_supervisor_asking_first_goes_through_that_programmes_cases_only(
    client: TestClient, keys: Keys, api_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no view of every programme kept for the day (the start-up keeps today's), a supervisor of one
    programme goes through that programme's cases alone; once the view of every programme is kept, a
    programme is taken from it."""
    team = _team(api_store, keys)
    worked = _counting(monkeypatch, "caseload", "caseload_part")
    day = TODAY - dt.timedelta(days=10)
    hc = next(p for k, p in team.callers if k == keys.supervisor_hc)

    def caseload(key: str, **params: str) -> Any:
        answer = client.get("/api/v1/caseload", params={"on": day.isoformat(), **params}, headers=bearer(key))
        assert answer.status_code == 200
        return answer.json()["managers"]

    assert caseload(keys.supervisor_hc) == _caseload_of(team.cases, hc, day)
    health_care = [c.id for c in team.cases if c.programme is ProgrammeType.HEALTH_CARE]
    assert health_care and worked == dict.fromkeys(health_care, 1)
    caseload(keys.supervisor)  # the view of every programme, kept now
    assert worked == {c.id: 1 + (c.id in health_care) for c in team.cases}
    worked.clear()
    sw = next(p for k, p in team.callers if k == keys.supervisor_sw)
    assert caseload(keys.supervisor, programme="social-work") == _caseload_of(team.cases, sw, day)
    assert caseload(keys.supervisor_sw) == _caseload_of(team.cases, sw, day)
    assert worked == Counter()
