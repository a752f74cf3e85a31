"""The worklist through the API: who reads whose, the filters and pages, the dates as written, refusals
as problem+json, and the audit (the items themselves are unit-tested in tests/test_worklist.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from collections import Counter

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Contact, ContactMode, GoalAchievement, ReferralStatus, allowed_referral_moves
from fhir_cm.store import ApiRole, Store, create_api_key, list_cases, save_case
from fhir_cm.synthetic import generate_cases
from fhir_cm.worklist import compute_worklist, load_worklist_rules

from tests.unreadable import SECRET_NOTE, make_unreadable

from .conftest import TODAY, Keys, bearer, create
from .test_dates_as_written import CASE as WRITTEN
from .test_dates_as_written import _import

#: Due a month before TODAY, not attained: on the worklist of whoever manages the case.
LATE_GOAL = {"id": "g-1", "description": "Walk 200 m unaided", "start": "2025-02-01", "due": "2025-05-31"}
SEEN = [{"id": "seen", "date": "2025-06-29", "mode": "face-to-face"}]  # yesterday: no visit due


def late(client: TestClient, key: str, case_id: str, manager: str = "cm-1", **fields: Any) -> None:
    """A case of ``manager``'s with one goal past due (and a visit yesterday)."""
    fields = {"goals": [LATE_GOAL], "contacts": SEEN} | fields
    create(client, key, id=case_id, case_manager={"kind": "practitioner", "id": manager}, **fields)


def worklist(client: TestClient, key: str, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/worklist", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cases_on(body: dict[str, Any]) -> list[str]:
    return [item["case_id"] for item in body["items"]]


def test_a_case_manager_reads_their_own_worklist(client: TestClient, keys: Keys) -> None:
    late(client, keys.supervisor, "a")
    late(client, keys.supervisor, "b", manager="cm-2")
    # cm-1 is on c's team (a nurse): they may read the case, but it is cm-2's to work.
    nurse = [{"id": "m-1", "role": "nurse", "party": {"kind": "practitioner", "id": "cm-1"}}]
    late(client, keys.supervisor, "c", manager="cm-2", team=nurse)
    body = worklist(client, keys.cm1)
    assert (body["on"], body["case_manager"], body["total"], body["overdue"]) == ("2025-06-30", "cm-1", 1, 1)
    [item] = body["items"]
    assert item == {
        "case_id": "a",
        "kind": "goal-past-due",
        "what": "Goal not attained: Walk 200 m unaided",
        "due": "2025-05-31",
        "overdue": True,
        "since": None,
        "subject": "goal",
        "subject_id": "g-1",
        "programme": "health-care",
        "case_status": "active",
        "case_manager": "cm-1",
        "case_manager_name": None,
        "case_manager_server": None,
        "dates_as_written": {},
    }
    assert cases_on(worklist(client, keys.cm2)) == ["b", "c"]


def test_a_supervisor_reads_every_case_managers_worklist_or_the_one_asked_for(client: TestClient, keys: Keys) -> None:
    late(client, keys.supervisor, "a")
    late(client, keys.supervisor, "b", manager="cm-2")
    late(client, keys.supervisor, "sw", manager="cm-2", programme="social-work")
    everyone = worklist(client, keys.supervisor)
    assert (everyone["case_manager"], cases_on(everyone)) == (None, ["a", "b", "sw"])
    one = worklist(client, keys.supervisor, case_manager="cm-2")
    assert (one["case_manager"], cases_on(one)) == ("cm-2", ["b", "sw"])
    assert cases_on(worklist(client, keys.supervisor, case_manager="cm-2", programme="social-work")) == ["sw"]
    # A supervisor of one programme: that programme's cases only, whoever manages them.
    assert cases_on(worklist(client, keys.supervisor_hc, case_manager="cm-2")) == ["b"]
    assert cases_on(worklist(client, keys.supervisor_hc, programme="social-work")) == []
    assert cases_on(worklist(client, keys.supervisor_sw)) == ["sw"]
    assert cases_on(worklist(client, keys.supervisor, case_manager="nobody")) == []


def test_a_case_manager_may_not_read_another_ones_worklist(client: TestClient, keys: Keys) -> None:
    late(client, keys.supervisor, "b", manager="cm-2")
    refused = client.get("/api/v1/worklist", params={"case_manager": "cm-2"}, headers=bearer(keys.cm1))
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "own worklist" in refused.json()["detail"]
    assert worklist(client, keys.cm1, case_manager="cm-1")["items"] == []


def test_no_worklist_without_a_case_workers_key(client: TestClient, keys: Keys) -> None:
    assert client.get("/api/v1/worklist").status_code == 401
    assert client.get("/api/v1/worklist", headers=bearer(keys.revoked)).status_code == 401
    service = client.get("/api/v1/worklist", headers=bearer(keys.service))
    assert (service.status_code, service.headers["content-type"]) == (403, "application/problem+json")


def referral(authored: str, due: str, status: str = "accepted") -> dict[str, str]:
    return {"id": "r-1", "kind": "food", "service": "Pantry", "authored": authored, "due": due, "status": status}


def test_the_filters(client: TestClient, keys: Keys) -> None:
    late(
        client, keys.supervisor, "a", referrals=[referral("2025-06-20", "2025-07-03")], contacts=[]
    )  # never seen since 2025-01-10: due 02-09
    kinds = lambda body: [(i["kind"], i["due"], i["overdue"]) for i in body["items"]]  # noqa: E731
    assert kinds(worklist(client, keys.cm1)) == [
        ("no-face-to-face", "2025-02-09", True),
        ("goal-past-due", "2025-05-31", True),
        ("referral-due", "2025-07-03", False),
    ]
    assert kinds(worklist(client, keys.cm1, kind=["referral-due", "goal-past-due"])) == [
        ("goal-past-due", "2025-05-31", True),
        ("referral-due", "2025-07-03", False),
    ]
    overdue = worklist(client, keys.cm1, overdue="true")
    assert (len(overdue["items"]), overdue["total"], overdue["overdue"]) == (2, 2, 2)
    assert kinds(worklist(client, keys.cm1, due_before="2025-05-31")) == [("no-face-to-face", "2025-02-09", True)]
    assert kinds(worklist(client, keys.cm1, due_before="2025-06-01", kind="referral-due")) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("kind", "everything"),
        ("overdue", "perhaps"),
        ("due_before", "2025-13-01"),
        ("due_before", "1751241600"),
        ("due_before", "2025-06"),
        ("case_manager", "../cm-2"),
        ("programme", "astrology"),
        ("limit", "0"),
        ("limit", "201"),
        ("offset", "-1"),
    ],
)
def test_a_bad_filter_is_refused_naming_it(client: TestClient, keys: Keys, name: str, value: str) -> None:
    response = client.get("/api/v1/worklist", params={name: value}, headers=bearer(keys.supervisor))
    assert (response.status_code, response.headers["content-type"]) == (422, "application/problem+json")
    problem = response.json()
    assert [e["field"].split(".")[0] for e in problem["errors"]] == [name]  # kind.0: the first kind given
    said = [problem["detail"], *(e["message"] for e in problem["errors"])]
    assert not any(value in text for text in said)  # the field is named, never the value sent


def test_pages_cut_the_same_list(client: TestClient, keys: Keys) -> None:
    for i in range(5):
        late(client, keys.supervisor, f"case-{i}")
    first = worklist(client, keys.cm1, limit=2)
    assert (cases_on(first), first["total"], first["next_offset"]) == (["case-0", "case-1"], 5, 2)
    second = worklist(client, keys.cm1, limit=2, offset=2)
    assert (cases_on(second), second["next_offset"]) == (["case-2", "case-3"], 4)
    last = worklist(client, keys.cm1, limit=2, offset=4)
    assert (cases_on(last), last["next_offset"], last["offset"], last["limit"]) == (["case-4"], None, 4, 2)
    assert worklist(client, keys.cm1, offset=10)["items"] == []


def test_a_change_to_a_case_changes_the_worklist(client: TestClient, keys: Keys) -> None:
    late(client, keys.cm1, "a", contacts=[])
    assert [i["kind"] for i in worklist(client, keys.cm1)["items"]] == ["no-face-to-face", "goal-past-due"]
    seen = client.post(
        "/api/v1/cases/a/contacts", json={"date": "2025-06-30", "mode": "face-to-face"}, headers=bearer(keys.cm1)
    )
    assert seen.status_code == 201, seen.text
    done = client.patch("/api/v1/cases/a/goals/g-1", json={"achievement": "achieved"}, headers=bearer(keys.cm1))
    assert done.status_code == 200, done.text
    assert worklist(client, keys.cm1)["items"] == []


def test_a_case_on_hold_keeps_its_referrals_on_the_worklist(client: TestClient, keys: Keys) -> None:
    late(client, keys.cm1, "a", referrals=[referral("2025-06-01", "2025-06-20")], contacts=[])
    held = client.post(
        "/api/v1/cases/a/status", json={"status": "on-hold", "reason": "in hospital abroad"}, headers=bearer(keys.cm1)
    )
    assert held.status_code == 200, held.text
    body = worklist(client, keys.cm1)
    assert [(i["kind"], i["case_status"]) for i in body["items"]] == [("referral-due", "on-hold")]


#: The dates-as-written tests' case, made cm-1's (by name) with a goal past due, a referral due today and a
#: visit long ago.
CASE = Case.model_validate(
    {
        **WRITTEN.model_dump(exclude={"goals", "referrals"}),
        "case_manager": {"kind": "practitioner", "id": "cm-1", "name": "Cass Manager"},
        "goals": [LATE_GOAL],
        "referrals": [{**referral("2025-02-01", "2025-06-30"), "id": "ref-home"}],
        "contacts": [{"id": "visit", "date": "2025-04-01", "mode": "face-to-face"}],
    }
)


def as_a_hospital_wrote_it(resource: dict[str, Any]) -> None:
    """The goal due in May, the referral to be done in June, the last visit in April: months, not days."""
    if resource["resourceType"] == "Goal":
        resource["target"][0]["dueDate"] = "2025-05"
    if resource["resourceType"] == "ServiceRequest":
        resource["occurrenceDateTime"] = "2025-06"
    if resource["resourceType"] == "Communication":
        resource["sent"] = "2025-04"


def test_dates_a_hospital_wrote_as_a_month_are_said_as_written(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    _import(tmp_path, api_store, settings, CASE, as_a_hospital_wrote_it)
    body = worklist(client, keys.cm1)
    items = {i["kind"]: i for i in body["items"]}
    assert {k: (i["due"], i["since"], i["dates_as_written"]) for k, i in items.items()} == {
        # Seen "2025-04", read as 04-01: a moderate case's 30 days were up on 05-01.
        "no-face-to-face": ("2025-05-01", "2025-04-01", {"/since": "2025-04"}),
        "goal-past-due": ("2025-05-31", None, {"/due": "2025-05"}),
        "referral-due": ("2025-06-30", None, {"/due": "2025-06"}),
    }
    assert items["no-face-to-face"]["case_manager_name"] == "Cass Manager"


def test_a_copy_brought_again_with_a_month_for_its_day_is_said_as_that_month(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    """The hospital sends the goal again, due "2025-05" where it said 2025-05-31: the case reads the same day
    and is not saved again, but the copy is, and the worklist kept from before says the month."""
    _import(tmp_path, api_store, settings, CASE, lambda resource: None)
    goal = [i for i in worklist(client, keys.cm1)["items"] if i["kind"] == "goal-past-due"]
    assert [i["dates_as_written"] for i in goal] == [{}]
    _import(tmp_path, api_store, settings, CASE, as_a_hospital_wrote_it)
    goal = [i for i in worklist(client, keys.cm1)["items"] if i["kind"] == "goal-past-due"]
    assert [i["dates_as_written"] for i in goal] == [{"/due": "2025-05"}]


def test_a_worklist_names_its_cases_in_the_audit_once_until_they_change(client: TestClient, keys: Keys) -> None:
    late(client, keys.cm1, "a")
    late(client, keys.cm1, "b")
    late(client, keys.cm1, "c")
    for request_id in ("w-1", "w-2"):
        response = client.get(
            "/api/v1/worklist", params={"limit": 2}, headers={**bearer(keys.cm1), "X-Request-Id": request_id}
        )
        assert response.status_code == 200
    entries = client.get("/api/v1/audit", params={"limit": 200}, headers=bearer(keys.supervisor)).json()
    shown = [(e["request_id"], e["case_id"], e["detail"]) for e in entries if e["action"] == "worklist"]
    assert sorted(shown, key=str) == sorted(
        [("w-1", "a", None), ("w-1", "b", None), ("w-2", None, "unchanged:w-1")], key=str
    )


def test_a_worklist_shown_again_after_a_change_names_the_cases_new_to_it(client: TestClient, keys: Keys) -> None:
    """Another case saved, the same caller's worklist is shown again changed: a row for the case it now
    shows too and one naming the showing that listed the others, not every case again."""
    for case_id in ("a", "b", "c", "d"):
        late(client, keys.cm1, case_id)
    for request_id, new in (("w-1", None), ("w-2", "e"), ("w-3", "f")):
        if new is not None:
            late(client, keys.cm1, new)
        response = client.get("/api/v1/worklist", headers={**bearer(keys.cm1), "X-Request-Id": request_id})
        assert response.status_code == 200
    entries = client.get("/api/v1/audit", params={"limit": 200}, headers=bearer(keys.supervisor)).json()
    shown = [(e["request_id"], e["case_id"], e["detail"]) for e in entries if e["action"] == "worklist"]
    assert sorted(shown, key=str) == sorted(
        [("w-1", c, None) for c in "abcd"]
        + [("w-2", "e", None), ("w-2", None, "changed:w-1"), ("w-3", "f", None), ("w-3", "e", None)]
        + [("w-3", None, "changed:w-1")],
        key=str,
    )


def test_a_case_this_version_cannot_read_is_counted_not_listed(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    late(client, keys.cm1, "a")
    late(client, keys.cm1, "b")
    make_unreadable(api_store, "b")
    response = client.get("/api/v1/worklist", headers=bearer(keys.cm1))
    assert response.status_code == 200, response.text
    assert (cases_on(response.json()), response.json()["unreadable"]) == (["a"], 1)
    assert SECRET_NOTE not in response.text
    assert worklist(client, keys.cm2)["unreadable"] == 0
    assert worklist(client, keys.supervisor)["unreadable"] == 1
    assert worklist(client, keys.supervisor, case_manager="cm-2")["unreadable"] == 0  # b is cm-1's
    assert worklist(client, keys.supervisor_sw)["unreadable"] == 0  # b is health-care


def test_the_day_is_the_apps(client: TestClient, keys: Keys) -> None:
    late(client, keys.cm1, "a", goals=[{**LATE_GOAL, "due": TODAY.isoformat()}])
    assert worklist(client, keys.cm1)["items"] == []  # due today: not past due yet
    client.app.state.clock = lambda: TODAY + dt.timedelta(days=1)  # type: ignore[attr-defined]
    assert cases_on(worklist(client, keys.cm1)) == ["a"]


def everything(client: TestClient, key: str) -> list[dict[str, Any]]:
    """Every page of a worklist."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        body = worklist(client, key, limit=200, offset=offset)
        items += body["items"]
        offset = body["next_offset"]
    return items


def test_the_kept_parts_give_the_worklist_of_every_case_and_each_manager_only_their_visible_cases(
    client: TestClient, keys: Keys, api_store: Store
) -> None:
    """The API keeps each case's items by revision in one view for every caller; its answers equal the
    worklist computed from every stored case — first, and after cases change — and a case manager's items
    are all of cases that manager may read."""
    cases = list(generate_cases(60, seed=11, today=TODAY))
    with api_store.session() as s:
        for c in cases:
            save_case(s, c, enqueue=False)
    busiest = Counter(c.case_manager.id for c in cases if c.is_open and c.case_manager).most_common(1)[0][0]
    with api_store.session() as s:
        _, manager = create_api_key(s, name="busiest", role=ApiRole.CASE_MANAGER, practitioner_id=busiest)

    def expected(**filters: Any) -> list[dict[str, Any]]:
        with api_store.session(read_only=True) as s:
            stored = list_cases(s)
        return [i.model_dump(mode="json") for i in compute_worklist(stored, TODAY, load_worklist_rules(), **filters)]

    def without_written(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in i.items() if k != "dates_as_written"} for i in items]

    for _ in range(2):
        assert without_written(everything(client, keys.supervisor)) == without_written(expected())
        mine = everything(client, manager)
        assert mine and without_written(mine) == without_written(expected(case_managers={busiest}))
        for case_id in {i["case_id"] for i in mine}:
            assert client.get(f"/api/v1/cases/{case_id}", headers=bearer(manager)).status_code == 200
        # Some of the manager's cases change: a visit today, goals attained, referrals done.
        with api_store.session() as s:
            for c in list_cases(s)[::3]:
                save_case(s, done_with(c), enqueue=False)
    assert everything(client, manager) == [
        i for i in everything(client, keys.supervisor) if i["case_manager"] == busiest
    ]


def done_with(case: Case) -> Case:
    """``case`` seen face to face today, its goals attained and its referrals under way done."""
    goals = [g.model_copy(update={"achievement": GoalAchievement.ACHIEVED}) for g in case.goals]
    referrals = [
        r.model_copy(update={"status": ReferralStatus.COMPLETED})
        if allowed_referral_moves(r.status) and r.status is not ReferralStatus.DRAFT
        else r
        for r in case.referrals
    ]
    contacts = [*case.contacts, Contact(date=TODAY, mode=ContactMode.FACE_TO_FACE)]
    return case.model_copy(update={"goals": goals, "referrals": referrals, "contacts": contacts})


def test_the_days_worklist_is_gone_through_at_start_up(
    api_store: Store, settings: Settings, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first case manager of a new process finds every case's items of the day kept: the start-up
    went through the cases (10,000 took 1.7 s for that first caller). A change after it is gone through
    for the next caller, as ever."""
    from fhir_cm.api import create_app
    from fhir_cm.api.routes import worklist as route

    with api_store.session() as s:
        for case in generate_cases(4, seed=3, today=TODAY):
            save_case(s, case)
    gone_through: Counter[str] = Counter()
    real = route.worklist_part

    def counted(case: Case, today: dt.date, rules: Any) -> Any:
        gone_through[case.id] += 1
        return real(case, today, rules)

    app = create_app(settings, store=api_store, clock=lambda: TODAY)
    with TestClient(app) as client:
        assert app.state.facade_ready.wait(60)
        monkeypatch.setattr(route, "worklist_part", counted)
        worklist(client, keys.cm1)
        assert gone_through == Counter()
        late(client, keys.supervisor, "new")
        worklist(client, keys.cm1)
        assert gone_through == Counter({"new": 1})
