"""Applying a decision on a conflict, in the store: the case, the outbox and the conflict record."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.domain import Case
from fhir_cm.store import (
    ConflictStatus,
    NotFound,
    OutboxStatus,
    Resolution,
    Store,
    add_conflict,
    get_case,
    list_audit,
    list_conflicts,
    list_outbox,
    open_store,
    save_case,
)
from fhir_cm.sync import ConflictNotResolvable, merge_case, resolve
from fhir_cm.sync._conflicts import record_clashes
from tests.mapping.builders import full_case


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'resolve.db'}") as opened:
        yield opened


def changed(case: Case, **changes: Any) -> Case:
    return Case.model_validate({**case.model_dump(), **changes})


def goal(case: Case, goal_id: str, **changes: Any) -> Case:
    return changed(
        case, goals=[{**g.model_dump(), **changes} if g.id == goal_id else g.model_dump() for g in case.goals]
    )


def clash(store: Store, base: Case, local: Case, server: Case) -> int:
    """Store the merged case and its conflicts as a pull does; returns the single conflict's id."""
    outcome = merge_case(base, local, server)
    with store.session() as s:
        save_case(s, outcome.case, enqueue=False)
        (conflict_id,) = record_clashes(s, base.id, outcome.clashes)
    return conflict_id


def stored(store: Store, case_id: str) -> Case:
    with store.session(read_only=True) as s:
        case = get_case(s, case_id)
    assert case is not None
    return case


def pending(store: Store, case_id: str) -> int:
    with store.session(read_only=True) as s:
        return len(list_outbox(s, status=OutboxStatus.PENDING, case_id=case_id))


def test_keep_local_puts_the_local_value_back_and_queues_the_case(store: Store) -> None:
    base = full_case()
    conflict_id = clash(
        store, base, goal(base, "goal-1", achievement="improving"), goal(base, "goal-1", achievement="achieved")
    )

    done = resolve(store, conflict_id, "local", resolved_by="cm-7")

    assert {g.id: g.achievement for g in stored(store, base.id).goals}["goal-1"] == "improving"
    assert (done.status, done.resolution, done.resolved_by) == (ConflictStatus.RESOLVED, Resolution.LOCAL, "cm-7")
    assert pending(store, base.id) == 1
    with store.session(read_only=True) as s:
        assert list_conflicts(s, case_id=base.id) == []


def test_keep_server_leaves_the_case_as_merged(store: Store) -> None:
    base = full_case()
    conflict_id = clash(store, base, changed(base, acuity="low"), changed(base, acuity="intensive"))
    before = stored(store, base.id)

    done = resolve(store, conflict_id, "server")

    assert stored(store, base.id) == before and before.acuity == "intensive"
    assert done.resolution is Resolution.SERVER


def test_keep_local_of_a_goal_the_server_removed_brings_it_back(store: Store) -> None:
    base = full_case()
    local = goal(base, "goal-2", target="walk 300 m")
    server = changed(base, goals=[base.goals[0].model_dump()])
    conflict_id = clash(store, base, local, server)
    assert [g.id for g in stored(store, base.id).goals] == ["goal-1"]

    resolve(store, conflict_id, "local")

    assert {g.id: g.target for g in stored(store, base.id).goals} == {"goal-1": "lease signed", "goal-2": "walk 300 m"}


def test_keep_local_of_a_team_member_field(store: Store) -> None:
    base = full_case()
    member = base.team[0]
    local = changed(base, team=[{**member.model_dump(), "end": "2024-12-31"}, *(m.model_dump() for m in base.team[1:])])
    server = changed(
        base, team=[{**member.model_dump(), "end": "2024-11-30"}, *(m.model_dump() for m in base.team[1:])]
    )
    conflict_id = clash(store, base, local, server)

    resolve(store, conflict_id, "local")

    assert stored(store, base.id).team[0].end.isoformat() == "2024-12-31"


def test_an_unknown_or_already_resolved_conflict_is_not_found(store: Store) -> None:
    base = full_case()
    conflict_id = clash(store, base, changed(base, acuity="low"), changed(base, acuity="intensive"))
    resolve(store, conflict_id, "server")

    with pytest.raises(NotFound):
        resolve(store, conflict_id, "local")
    with pytest.raises(NotFound):
        resolve(store, 9999, "local")


def test_a_conflict_the_pusher_recorded_asks_for_a_pull_first(store: Store) -> None:
    case = full_case()
    with store.session() as s:
        save_case(s, case)
        conflict_id = add_conflict(
            s,
            case.id,
            "Goal",
            "goal-1",
            local={"resourceType": "Goal"},
            server={"resourceType": "Goal"},
            fields=["achievementStatus"],
        )

    with pytest.raises(ConflictNotResolvable, match="pull first"):
        resolve(store, conflict_id, "local")
    with store.session(read_only=True) as s:
        assert [c.id for c in list_conflicts(s)] == [conflict_id]  # still open


# --- the command line -------------------------------------------------------------------------------


def test_the_conflicts_command_lists_and_resolves(store: Store, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from fhir_cm.cli import app

    base = full_case()
    conflict_id = clash(
        store, base, goal(base, "goal-1", achievement="improving"), goal(base, "goal-1", achievement="achieved")
    )
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'resolve.db'}"}
    runner = CliRunner()

    listed = runner.invoke(app, ["conflicts", "--case", base.id, "--json"], env=env)
    table = runner.invoke(app, ["conflicts"], env=env)
    bad = runner.invoke(app, ["conflicts", "resolve", str(conflict_id), "--keep", "mine"], env=env)
    done = runner.invoke(app, ["conflicts", "resolve", str(conflict_id), "--keep", "local"], env=env)
    again = runner.invoke(app, ["conflicts", "resolve", str(conflict_id), "--keep", "local"], env=env)
    after = runner.invoke(app, ["conflicts", "--json"], env=env)

    assert listed.exit_code == 0, listed.output
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["case_id"], row["resource_type"], row["resource_key"], row["fields"]) == (
        conflict_id,
        base.id,
        "Goal",
        "goal-1",
        ["achievement"],
    )
    assert "Goal/goal-1" in table.stdout and "achievement" in table.stdout
    assert bad.exit_code == 2
    assert done.exit_code == 0, done.output
    assert {g.id: g.achievement for g in stored(store, base.id).goals}["goal-1"] == "improving"
    assert again.exit_code == 1 and "no open conflict" in again.stderr
    assert after.stdout == ""
    with store.session(read_only=True) as s:  # audited as the API's resolutions are, naming the account
        (row,) = list_audit(s, case_id=base.id)
    assert (row.principal, row.action, row.detail) == (
        f"cli:{getpass.getuser()}",
        "resolve-conflict",
        f"conflict:{conflict_id}:local",
    )
