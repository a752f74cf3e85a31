"""The three-way merge of a case: who changed what, and what clashes."""

from __future__ import annotations

from typing import Any

from fhir_cm.domain import Case, Goal, TeamMember
from fhir_cm.sync import merge_case
from tests.mapping.builders import D, full_case


def changed(case: Case, **changes: Any) -> Case:
    """A validated copy (enums as enums, rules checked)."""
    return Case.model_validate({**case.model_dump(), **changes})


def goal(case: Case, goal_id: str, **changes: Any) -> Case:
    return changed(
        case, goals=[{**g.model_dump(), **changes} if g.id == goal_id else g.model_dump() for g in case.goals]
    )


def test_fields_only_one_side_changed_are_merged_without_clashes() -> None:
    base = full_case()
    local = changed(base, acuity="intensive")
    server = goal(base, "goal-1", achievement="achieved")
    out = merge_case(base, local, server)
    assert out.clashes == []
    assert out.case.acuity == "intensive"
    assert {g.id: g.achievement for g in out.case.goals}["goal-1"] == "achieved"


def test_the_same_field_changed_differently_clashes_and_keeps_the_server_value() -> None:
    base = full_case()
    out = merge_case(base, goal(base, "goal-1", achievement="improving"), goal(base, "goal-1", achievement="achieved"))
    (clash,) = out.clashes
    assert (clash.resource_type, clash.resource_key, clash.fields) == ("Goal", "goal-1", ("achievement",))
    assert (clash.local, clash.server) == ({"achievement": "improving"}, {"achievement": "achieved"})
    assert {g.id: g.achievement for g in out.case.goals}["goal-1"] == "achieved"


def test_the_same_change_on_both_sides_is_no_clash() -> None:
    base = full_case()
    both = goal(base, "goal-1", achievement="achieved")
    assert merge_case(base, both, both).clashes == []


def test_without_waiting_local_changes_the_server_wins_silently() -> None:
    base = full_case()
    out = merge_case(
        base,
        goal(base, "goal-1", achievement="improving"),
        goal(base, "goal-1", achievement="achieved"),
        detect_clashes=False,
    )
    assert out.clashes == []
    assert {g.id: g.achievement for g in out.case.goals}["goal-1"] == "achieved"


def test_entities_added_on_either_side_are_all_kept() -> None:
    base = full_case()
    local = base.model_copy(update={"goals": [*base.goals, Goal(id="goal-local", description="x", due=D(2024, 9, 1))]})
    server = base.model_copy(
        update={"goals": [*base.goals, Goal(id="goal-server", description="y", due=D(2024, 9, 1))]}
    )
    out = merge_case(base, local, server)
    assert [g.id for g in out.case.goals] == ["goal-1", "goal-2", "goal-local", "goal-server"]
    assert out.clashes == []


def test_case_fields_clash_on_the_episode_and_the_plan_summary_on_the_careplan() -> None:
    base = full_case()
    out = merge_case(
        base,
        changed(base, acuity="low", plan_summary="local plan"),
        changed(base, acuity="intensive", plan_summary="server plan"),
    )
    where = {(c.resource_type, c.resource_key): c.fields for c in out.clashes}
    assert where == {("EpisodeOfCare", "case-1"): ("acuity",), ("CarePlan", "case-1-careplan"): ("plan_summary",)}


def test_a_team_member_the_server_removed_but_local_edited_is_a_careteam_clash() -> None:
    base = full_case()
    member = base.team[0]
    local = base.model_copy(update={"team": [member.model_copy(update={"end": D(2024, 12, 31)}), *base.team[1:]]})
    server = base.model_copy(update={"team": base.team[1:]})
    out = merge_case(base, local, server)
    assert [m.id for m in out.case.team] == [m.id for m in base.team[1:]]
    (clash,) = out.clashes
    assert clash.resource_type == "CareTeam" and clash.fields == (f"team[{member.id}].(removed on the server)",)
    assert isinstance(member, TeamMember)
