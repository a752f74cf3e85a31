"""The worklist on hand-built cases, each item kind with the days worked out by hand (rules: the shipped
``mappings/worklist-rules.json`` — referrals due and follow-ups listed 7 days ahead, a reply expected
within 14 days, a moderate case seen face to face at least every 30)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fhir_cm import worklist as worklist_module
from fhir_cm.domain import Case, Party
from fhir_cm.mapping import case_to_resources, resources_to_case
from fhir_cm.terminology import MappingFileError
from fhir_cm.worklist import (
    ItemKind,
    Subject,
    WorklistItem,
    WorklistRules,
    case_items,
    compute_worklist,
    load_worklist_rules,
    order_key,
    worklist_part,
)

TODAY = dt.date(2025, 6, 30)
RULES = load_worklist_rules()
SYSTEM = "https://fhir-cm.test/id"


def case(case_id: str = "a", manager: str | None = "cm-1", **fields: Any) -> Case:
    base: dict[str, Any] = {
        "id": case_id,
        "programme": "health-care",
        "period": {"start": "2025-01-01"},
        "patient": {"kind": "patient", "id": f"p-{case_id}"},
        "case_manager": {"kind": "practitioner", "id": manager, "name": f"Dr {manager}"} if manager else None,
        # Seen face to face yesterday: no visit is due unless a test says otherwise.
        "contacts": [{"id": f"{case_id}-seen", "date": "2025-06-29", "mode": "face-to-face"}],
    }
    return Case.model_validate(base | fields)


def referral(
    rid: str, authored: str, *, due: str | None = None, status: str = "requested", **fields: Any
) -> dict[str, Any]:
    reason = (
        {"status_reason": "paused by the agency"} if status in ("on-hold", "cancelled", "rejected", "failed") else {}
    )
    made = {
        "id": rid,
        "kind": "home-health",
        "service": "Home care",
        "authored": authored,
        "due": due,
        "status": status,
    }
    return made | reason | fields


def about(item: WorklistItem) -> tuple[ItemKind, Subject, str, dt.date, bool]:
    return (item.kind, item.subject, item.subject_id, item.due, item.overdue)


def listed(c: Case, today: dt.date = TODAY, rules: WorklistRules = RULES) -> list[tuple[str, str, str, bool]]:
    return [(i.kind.value, i.subject_id, i.due.isoformat(), i.overdue) for i in case_items(c, today, rules)]


# --- referral-due ------------------------------------------------------------------------------------------


def test_a_referral_is_listed_from_a_week_before_its_due_day_and_overdue_after_it() -> None:
    c = case(
        referrals=[
            referral("soon", "2025-06-01", due="2025-07-07", status="accepted"),  # 7 days ahead: listed
            referral("later", "2025-06-20", due="2025-07-08", status="accepted"),  # 8 days ahead: not yet
            referral("today", "2025-06-20", due="2025-06-30", status="in-progress"),  # due today: not overdue
            referral("late", "2025-06-20", due="2025-06-29", status="on-hold"),  # paused, still owed: overdue
        ]
    )
    assert listed(c) == [
        ("referral-due", "late", "2025-06-29", True),
        ("referral-due", "today", "2025-06-30", False),
        ("referral-due", "soon", "2025-07-07", False),
    ]


def test_a_referral_done_or_not_yet_sent_is_not_due_from_anyone() -> None:
    c = case(
        referrals=[
            referral("done", "2025-06-01", due="2025-06-20", status="completed"),
            referral("cancelled", "2025-06-01", due="2025-06-20", status="cancelled"),
            referral("draft", "2025-06-20", due="2025-06-25", status="draft"),
            referral("undated", "2025-06-25", status="accepted"),  # no due day: nothing to be late for
        ]
    )
    assert listed(c) == []


# --- referral-no-reply -------------------------------------------------------------------------------------


def test_a_referral_still_requested_after_two_weeks_waits_for_a_reply() -> None:
    c = case(
        referrals=[
            referral("waiting", "2025-06-15"),  # 15 days: a reply was due on 06-29
            referral("fresh", "2025-06-16"),  # 14 days: due today, not yet past
            referral("answered", "2025-06-01", status="accepted"),
        ]
    )
    (item,) = case_items(c, TODAY, RULES)
    assert about(item) == (ItemKind.REFERRAL_NO_REPLY, Subject.REFERRAL, "waiting", dt.date(2025, 6, 29), True)
    assert item.since == dt.date(2025, 6, 15)
    assert item.what == "No reply yet to the home health referral: Home care"
    assert item.sources == {"/since": ("referrals", "waiting", "authored")}


def test_a_requested_referral_past_its_due_day_is_both_late_and_unanswered() -> None:
    c = case(referrals=[referral("r", "2025-06-01", due="2025-06-20")])
    assert listed(c) == [("referral-no-reply", "r", "2025-06-15", True), ("referral-due", "r", "2025-06-20", True)]


# --- transition-follow-up ----------------------------------------------------------------------------------


def discharged(follow_up_status: str = "requested", *, due: str | None = "2025-07-04") -> Case:
    """Home from hospital on 06-27; the tracker's follow-up for that stay (authored that day, due in 7 days)."""
    return case(
        stays=[
            {
                "id": "s-1",
                "setting": "acute-hospital",
                "start": "2025-06-20",
                "end": "2025-06-27",
                "discharge_disposition": "home",
            }
        ],
        referrals=[
            referral(
                "follow-up-s-1",
                "2025-06-27",
                due=due,
                status=follow_up_status,
                kind="follow-up",
                service="Post-discharge follow-up within 7 days",
                for_stay="s-1",
            )
        ],
    )


def test_the_follow_up_of_a_discharge_is_the_moves_item_not_a_referrals() -> None:
    (item,) = case_items(discharged(), TODAY, RULES)
    assert (item.kind, item.subject_id, item.due, item.overdue, item.since) == (
        ItemKind.TRANSITION_FOLLOW_UP,
        "follow-up-s-1",
        dt.date(2025, 7, 4),
        False,
        dt.date(2025, 6, 27),
    )
    assert item.what == "Follow-up after the move from acute hospital to home"
    assert item.sources == {"/due": ("referrals", "follow-up-s-1", "due"), "/since": ("stays", "s-1", "end")}
    # Nobody else is asked: a requested follow-up is no referral waiting for a reply, however old.
    assert [i.kind for i in case_items(discharged(), dt.date(2025, 7, 20), RULES)] == [ItemKind.TRANSITION_FOLLOW_UP]


def test_a_follow_up_without_a_due_day_is_due_the_day_it_was_asked_for_and_leaves_once_done() -> None:
    assert listed(discharged(due=None)) == [("transition-follow-up", "follow-up-s-1", "2025-06-27", True)]
    assert case_items(discharged(due=None), TODAY, RULES)[0].sources["/due"] == (
        "referrals",
        "follow-up-s-1",
        "authored",
    )
    assert listed(discharged("completed")) == []


def test_a_follow_up_more_than_a_week_ahead_is_not_listed_yet() -> None:
    assert listed(discharged(due="2025-07-04"), today=dt.date(2025, 6, 26)) == []  # not even discharged then
    assert listed(discharged(due="2025-07-08")) == []
    assert listed(discharged(due="2025-07-07")) == [("transition-follow-up", "follow-up-s-1", "2025-07-07", False)]


# --- goal-past-due -----------------------------------------------------------------------------------------


def test_a_goal_past_its_due_day_and_not_attained_is_listed() -> None:
    goals = [
        {
            "id": "late",
            "description": "Walk 200 m",
            "start": "2025-02-01",
            "due": "2025-06-29",
            "achievement": "improving",
        },
        {"id": "today", "description": "Cook a meal", "start": "2025-02-01", "due": "2025-06-30"},
        {
            "id": "met",
            "description": "Shower alone",
            "start": "2025-02-01",
            "due": "2025-05-01",
            "achievement": "achieved",
        },
        {
            "id": "kept",
            "description": "Take pills",
            "start": "2025-02-01",
            "due": "2025-05-01",
            "achievement": "sustaining",
        },
        {"id": "dropped", "description": "Drive", "start": "2025-02-01", "due": "2025-05-01", "status": "cancelled"},
        {"id": "self", "description": "Sleep well", "self_care": True, "start": "2025-02-01", "due": "2025-06-01"},
    ]
    items = case_items(case(goals=goals), TODAY, RULES)
    assert [(i.kind, i.subject, i.subject_id, i.overdue) for i in items] == [
        (ItemKind.GOAL_PAST_DUE, Subject.GOAL, "self", True),
        (ItemKind.GOAL_PAST_DUE, Subject.GOAL, "late", True),
    ]
    assert [i.what for i in items] == ["Self-care goal not attained: Sleep well", "Goal not attained: Walk 200 m"]
    assert items[1].sources == {"/due": ("goals", "late", "due")}


# --- no-face-to-face ---------------------------------------------------------------------------------------


def test_a_case_not_seen_face_to_face_longer_than_its_acuity_allows() -> None:
    seen = lambda day, mode="face-to-face": [{"id": "c-1", "date": day, "mode": mode}]  # noqa: E731
    assert listed(case(contacts=seen("2025-05-31"))) == []  # 30 days: a moderate case's limit, not past it
    (item,) = case_items(case(contacts=seen("2025-05-30")), TODAY, RULES)  # 31 days
    assert about(item) == (ItemKind.NO_FACE_TO_FACE, Subject.CASE, "a", dt.date(2025, 6, 29), True)
    assert (item.what, item.since, item.sources) == (
        "No face-to-face contact for 31 days",
        dt.date(2025, 5, 30),
        {"/since": ("contacts", "c-1", "date")},
    )
    # A phone call is no visit; a high-acuity case is seen every 14 days.
    assert [k for k, *_ in listed(case(contacts=seen("2025-06-29", "phone")))] == ["no-face-to-face"]
    assert [k for k, *_ in listed(case(contacts=seen("2025-06-15"), acuity="high"))] == ["no-face-to-face"]
    assert listed(case(contacts=seen("2025-06-16"), acuity="high")) == []


def test_a_case_never_seen_is_counted_from_the_day_it_first_became_active() -> None:
    history = [
        {"status": "referred", "start": "2025-01-01", "end": "2025-06-01"},
        {"status": "active", "start": "2025-06-01"},
    ]
    assert listed(case(contacts=[], status_history=history)) == []  # active for 29 days
    (item,) = case_items(case(contacts=[], status_history=history), dt.date(2025, 7, 2), RULES)
    assert (item.what, item.due, item.since, item.sources) == (
        "Not seen face to face yet",
        dt.date(2025, 7, 1),
        None,
        {},
    )


# --- which cases -------------------------------------------------------------------------------------------

OVERDUE_GOAL = [{"id": "g", "description": "Walk", "start": "2025-02-01", "due": "2025-06-01"}]
LATE_REFERRAL = [referral("r", "2025-06-20", due="2025-06-25", status="accepted")]


def test_a_closed_case_asks_nothing_and_one_closed_on_a_day_ahead_is_still_open_today() -> None:
    closed = case(status="closed", period={"start": "2025-01-01", "end": "2025-06-10"}, goals=OVERDUE_GOAL)
    assert worklist_part(closed, TODAY, RULES) is None
    ahead = case(
        status="closed",
        period={"start": "2025-01-01", "end": "2025-07-01"},
        status_history=[
            {"status": "active", "start": "2025-01-01", "end": "2025-07-01"},
            {"status": "closed", "start": "2025-07-01"},
        ],
        goals=OVERDUE_GOAL,
    )
    part = worklist_part(ahead, TODAY, RULES)
    assert part is not None and [(i.kind, i.case_status.value) for i in part.items] == [
        (ItemKind.GOAL_PAST_DUE, "active")
    ]


def test_a_case_on_hold_keeps_what_others_wait_on_but_not_its_visits_and_goal_reviews() -> None:
    on_hold = case(status="on-hold", contacts=[], goals=OVERDUE_GOAL, referrals=LATE_REFERRAL)
    assert listed(on_hold) == [("referral-due", "r", "2025-06-25", True)]
    active = case(contacts=[], goals=OVERDUE_GOAL, referrals=LATE_REFERRAL)
    assert [k for k, *_ in listed(active)] == ["no-face-to-face", "goal-past-due", "referral-due"]


def test_each_case_managers_worklist_holds_their_own_cases_only() -> None:
    cases = [
        case("a", "cm-1", goals=OVERDUE_GOAL),
        case("b", "cm-2", goals=OVERDUE_GOAL),
        case("c", None, goals=OVERDUE_GOAL),  # nobody's yet: on a supervisor's whole list only
    ]
    mine = compute_worklist(cases, TODAY, RULES, case_managers={"cm-1"})
    assert [(i.case_id, i.case_manager, i.case_manager_name) for i in mine] == [("a", "cm-1", "Dr cm-1")]
    assert [i.case_id for i in compute_worklist(cases, TODAY, RULES)] == ["a", "b", "c"]
    assert [i.case_id for i in compute_worklist(cases, TODAY, RULES, case_managers={None})] == ["c"]


def test_a_case_managed_from_another_server_is_on_no_local_case_managers_worklist() -> None:
    """Practitioner cm-1 on another hospital's server is not the local cm-1 (two servers number their
    records alike): their case is nobody's here, and a supervisor's list says where it is managed from."""
    outside = case("o", goals=OVERDUE_GOAL).model_copy(
        update={
            "case_manager": Party.model_validate(
                {"kind": "practitioner", "id": "cm-1", "name": "Dr Elsewhere", "server": "https://other.example/fhir"}
            )
        }
    )
    cases = [case("a", "cm-1", goals=OVERDUE_GOAL), outside]
    assert [i.case_id for i in compute_worklist(cases, TODAY, RULES, case_managers={"cm-1"})] == ["a"]
    everyone = {i.case_id: i for i in compute_worklist(cases, TODAY, RULES)}
    assert (everyone["o"].case_manager, everyone["o"].case_manager_server) == (None, "https://other.example/fhir")
    assert (everyone["a"].case_manager, everyone["a"].case_manager_server) == ("cm-1", None)


def test_a_case_handed_over_is_on_the_new_managers_worklist_from_the_handover_day() -> None:
    """The team says cm-1 managed the case until 06-29 and cm-2 from today, as a supervisor's hand-over
    records it: today it is cm-2's to work, whatever an older copy's case manager field said."""
    team = [
        {
            "id": "m1",
            "role": "case-manager",
            "party": {"kind": "practitioner", "id": "cm-1"},
            "start": "2025-01-01",
            "end": "2025-06-29",
        },
        {"id": "m2", "role": "case-manager", "party": {"kind": "practitioner", "id": "cm-2"}, "start": "2025-06-30"},
    ]
    c = case("a", "cm-2", team=team, goals=OVERDUE_GOAL)
    assert [i.case_manager for i in compute_worklist([c], TODAY, RULES)] == ["cm-2"]
    assert [i.case_manager for i in compute_worklist([c], dt.date(2025, 6, 29), RULES)] == ["cm-1"]


def test_the_filters_and_the_order_of_a_worklist() -> None:
    cases = [
        case(
            "b",
            contacts=[],
            goals=OVERDUE_GOAL,
            referrals=[referral("r", "2025-06-20", due="2025-07-03", status="accepted")],
        ),
        case("a", goals=OVERDUE_GOAL, referrals=[referral("r2", "2025-05-20", due="2025-06-01", status="accepted")]),
    ]
    # Earliest due first; on one day by case, and in a case what others wait on before the case manager's own.
    assert [(i.case_id, i.kind.value, i.due.isoformat()) for i in compute_worklist(cases, TODAY, RULES)] == [
        ("b", "no-face-to-face", "2025-01-31"),  # never seen since it began on 01-01
        ("a", "referral-due", "2025-06-01"),
        ("a", "goal-past-due", "2025-06-01"),
        ("b", "goal-past-due", "2025-06-01"),
        ("b", "referral-due", "2025-07-03"),
    ]
    overdue = compute_worklist(cases, TODAY, RULES, overdue_only=True)
    assert [(i.case_id, i.kind.value) for i in overdue] == [
        ("b", "no-face-to-face"),
        ("a", "referral-due"),
        ("a", "goal-past-due"),
        ("b", "goal-past-due"),
    ]
    goals = compute_worklist(cases, TODAY, RULES, kinds={ItemKind.GOAL_PAST_DUE, ItemKind.REFERRAL_NO_REPLY})
    assert [(i.case_id, i.kind) for i in goals] == [("a", ItemKind.GOAL_PAST_DUE), ("b", ItemKind.GOAL_PAST_DUE)]
    before = compute_worklist(cases, TODAY, RULES, due_before=dt.date(2025, 6, 1))
    assert [i.kind for i in before] == [ItemKind.NO_FACE_TO_FACE]  # the day itself is not before it


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([dt.date(2025, 6, 1), dt.date(2025, 6, 2)]) | st.dates(min_value=dt.date(2, 1, 1)),
            st.text(alphabet="az9-.", min_size=1, max_size=3),
            st.sampled_from(list(ItemKind)),
            st.text(alphabet="aAz09-.", min_size=1, max_size=4),
        ),
        max_size=30,
    )
)
@example(
    [(dt.date(2025, 6, 1), "a-1", ItemKind.REFERRAL_DUE, "r"), (dt.date(2025, 6, 1), "a", ItemKind.REFERRAL_DUE, "r")]
)
@example(
    [(dt.date(2025, 6, 1), "a", ItemKind.GOAL_PAST_DUE, "g"), (dt.date(2025, 6, 1), "a", ItemKind.REFERRAL_DUE, "r")]
)
def test_the_order_key_orders_items_as_their_day_case_kind_and_subject_do(
    fields: list[tuple[dt.date, str, ItemKind, str]],
) -> None:
    """One string per item (``order_key``) sorts as the tuple of its due day, case, kind (in ``ItemKind``'s
    order) and subject: a case id that begins another's (``a``, ``a-1``, ``a0``) included, and years of
    fewer than four digits."""
    rank = {kind: i for i, kind in enumerate(ItemKind)}
    items = [
        WorklistItem(
            case_id=case_id,
            kind=kind,
            what="due",
            due=due,
            overdue=False,
            subject=Subject.CASE,
            subject_id=subject_id,
            programme="health-care",
            case_status="active",
            case_manager=None,
        )
        for due, case_id, kind, subject_id in fields
    ]
    by_fields = sorted(items, key=lambda i: (i.due, i.case_id, rank[i.kind], i.subject_id))
    assert sorted(items, key=order_key) == by_fields


# --- dates and rules ---------------------------------------------------------------------------------------


def test_a_goal_due_in_a_month_the_hospital_named_is_past_due_only_once_that_month_is_over() -> None:
    """The hospital wrote the goal as due "2025-06": held as due by 06-30, it is not past due on 06-30
    (read as the first of June it would have been a month early), and is the day after."""
    hospital = case(goals=[{"id": "g", "description": "Walk", "start": "2025-02-01", "due": "2025-06-30"}])
    resources = case_to_resources(hospital, "R4", SYSTEM)
    for resource in resources.values():
        if resource["resourceType"] == "Goal":
            resource["target"][0]["dueDate"] = "2025-06"
    read = resources_to_case(list(resources.values()), "R4", SYSTEM)
    assert read.goals[0].due == dt.date(2025, 6, 30)
    assert listed(read) == []
    assert listed(read, today=dt.date(2025, 7, 1)) == [("goal-past-due", "g", "2025-06-30", True)]


def test_a_referral_made_after_the_day_is_not_on_that_days_list() -> None:
    """Each case counts as it stood at the end of the day (``case_as_of``), as the caseload reads it."""
    c = case(referrals=[referral("ahead", "2025-07-01", due="2025-07-01", status="accepted")])
    assert worklist_part(c, TODAY, RULES) is None
    part = worklist_part(c, dt.date(2025, 7, 1), RULES)
    assert part is not None and [(i.kind, i.subject_id, i.overdue) for i in part.items] == [
        (ItemKind.REFERRAL_DUE, "ahead", False)
    ]


def test_the_rules_are_data() -> None:
    data = json.loads((Path(__file__).resolve().parents[1] / "mappings" / worklist_module.RULES_FILE).read_text())
    data["referral_due"]["look_ahead_days"] = 30
    data["no_face_to_face"]["case_statuses"] = ["active", "on-hold"]
    rules = WorklistRules.model_validate(data)
    c = case(
        status="on-hold", contacts=[], referrals=[referral("r", "2025-06-20", due="2025-07-20", status="accepted")]
    )
    assert [k for k, *_ in listed(c, rules=rules)] == ["no-face-to-face", "referral-due"]
    assert listed(c) == []


def test_a_broken_rules_file_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads((Path(__file__).resolve().parents[1] / "mappings" / worklist_module.RULES_FILE).read_text())
    del data["no_face_to_face"]["within_days"]["low"]
    (tmp_path / worklist_module.RULES_FILE).write_text(json.dumps(data))
    monkeypatch.setattr(worklist_module, "mappings_dir", lambda: tmp_path)
    load_worklist_rules.cache_clear()
    try:
        with pytest.raises(MappingFileError, match="worklist-rules.json cannot be used: no_face_to_face: .*acuity low"):
            load_worklist_rules()
    finally:
        load_worklist_rules.cache_clear()


def test_an_item_says_its_dates_and_never_its_sources() -> None:
    (item,) = case_items(case(goals=OVERDUE_GOAL), TODAY, RULES)
    dumped = json.loads(item.model_dump_json())
    assert "sources" not in dumped and dumped["dates_as_written"] == {}
    assert WorklistItem.model_validate(dumped).due == dt.date(2025, 6, 1)
