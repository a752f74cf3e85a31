"""Reading a case's resources again with a few changed (a pull's merge): what the copies both reads
share is read once (``CaseReads``), and the cases read are those each read alone gives."""

from __future__ import annotations

from typing import Any

from fhir_cm.mapping import CaseReads, ResourceKey, UnreadableResourceError, case_to_resources, resources_to_case
from tests.mapping.builders import SYSTEM, full_case

NEED_2 = ResourceKey("Condition", "need-2")
GOAL_1 = ResourceKey("Goal", "goal-1")


def copies() -> dict[ResourceKey, dict[str, Any]]:
    """The case's resources as a server holds them (server ids)."""
    return {k: {**r, "id": f"s-{k.value}"} for k, r in case_to_resources(full_case(), "R4", SYSTEM).items()}


def read(resources: dict[ResourceKey, dict[str, Any]], reads: CaseReads | None = None) -> Any:
    return resources_to_case(resources.values(), "R4", SYSTEM, reads=reads)


def test_the_copies_both_reads_share_are_read_once_and_the_changed_one_again() -> None:
    base = copies()
    goal = base[GOAL_1]
    now = {**base, GOAL_1: {**goal, "description": {"text": "Stable housing by summer"}}}
    reads = CaseReads()
    before, after = read(base, reads), read(now, reads)
    assert before == read(base) and after == read(now)
    assert after.goals[0].description == "Stable housing by summer" != before.goals[0].description
    # The other goal's copy is the same object in both sets: what it said was reused, not read again.
    assert after.goals[1] is before.goals[1]
    assert after.needs[0] is before.needs[0]


def test_a_resource_the_others_refer_to_arriving_has_them_read_again() -> None:
    """A goal read while its need was missing addresses nothing; read again with the need there, it
    addresses it: what the goal said with the other references is not reused."""
    everything = copies()
    without = {k: r for k, r in everything.items() if k != NEED_2}
    reads = CaseReads()
    first = read(without, reads)
    assert [g.addresses for g in first.goals] == [["need-1"], []]
    again = read(everything, reads)
    assert again == read(everything)
    assert [g.addresses for g in again.goals] == [["need-1"], ["need-2"]]


def test_a_copy_that_does_not_read_raises_each_time() -> None:
    """What does not read is not kept: a read with it fails again, and the same read without it
    still gives the case."""
    base = copies()
    broken = {**base, GOAL_1: {**base[GOAL_1], "modifierExtension": [{"url": "urn:x", "valueBoolean": True}]}}
    reads = CaseReads()
    for _ in range(2):
        try:
            read(broken, reads)
        except UnreadableResourceError:
            pass
        else:
            raise AssertionError("an unknown modifier read")
    assert read(base, reads) == read(base)


def test_a_referral_whose_task_changed_is_read_again() -> None:
    """A referral is its ServiceRequest and its Task: the same ServiceRequest with a changed Task
    reads as the Task now says."""
    base = copies()
    task = ResourceKey("Task", "ref-1-task")
    now = {**base, task: {**base[task], "status": "accepted"}}
    reads = CaseReads()
    before, after = read(base, reads), read(now, reads)
    assert after == read(now)
    assert [r.status.value for r in before.referrals] == ["requested", "rejected"]
    assert [r.status.value for r in after.referrals] == ["accepted", "rejected"]
    assert after.referrals[1] is before.referrals[1]  # its ServiceRequest and Task both the same
