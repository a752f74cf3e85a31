"""Lossless update, the crux: a change to one domain field changes only that field's elements.

Each base resource is a server copy dressed with what other systems add — meta, a narrative, an
extension, a foreign coding inside an element we own, an element we do not own, and an element we
have never heard of — and all of it must survive the update untouched.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_cm.domain import CaseStatus, ReferralStatus, move_referral
from fhir_cm.mapping import ResourceKey, case_to_resources, iter_references, resources_to_case
from fhir_cm.mapping._codes import EXT_CURRENT_SETTING
from fhir_cm.mapping._json import get_in
from tests.mapping.builders import SYSTEM, D, changed_paths, full_case

FOREIGN_EXT = {"url": "http://ehr.example.org/fhir/StructureDefinition/flag", "valueString": "kept"}
FOREIGN_CODING = {"system": "http://ehr.example.org/codes", "code": "X1", "display": "Local code"}
NARRATIVE = {"status": "additional", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Written by the EHR</div>'}
#: An element each type has that fhir-cm does not own, with a valid value.
NOT_OURS: dict[str, tuple[str, Any]] = {
    "EpisodeOfCare": ("managingOrganization", {"reference": "Organization/ehr-org"}),
    "CarePlan": ("note", [{"text": "Discussed at the MDT"}]),
    "CareTeam": ("name", "Ann's team"),
    "Condition": ("severity", {"text": "moderate"}),
    "Goal": ("priority", {"text": "high"}),
    "ServiceRequest": ("priority", "urgent"),
    "Task": ("businessStatus", {"text": "Awaiting information"}),
    "Communication": ("category", [{"text": "monitoring"}]),
    "Encounter": ("length", {"value": 7, "unit": "days"}),
}
#: A CodeableConcept we own in each type, where another system's coding may sit beside ours.
OWN_CONCEPT = {
    "EpisodeOfCare": ("type", 0),
    "Condition": ("category", 1),
    "Goal": ("achievementStatus",),
    "Communication": ("medium", 0),
    "Encounter": ("type", 0),
}


def server_copy(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` as a server (and other systems writing to it) would hold it."""
    out = copy.deepcopy(resource)
    out["meta"] = {"versionId": "3", "lastUpdated": "2024-02-01T10:00:00Z", "profile": ["http://example.org/p"]}
    if out["resourceType"] != "CarePlan":
        out["text"] = copy.deepcopy(NARRATIVE)
    out.setdefault("extension", []).insert(0, copy.deepcopy(FOREIGN_EXT))
    element, value = NOT_OURS[out["resourceType"]]
    out[element] = copy.deepcopy(value)
    out["futureElement"] = {"from": "a later FHIR version"}
    target = get_in(out, OWN_CONCEPT.get(out["resourceType"], ("-",)))
    if target is not None:
        target["coding"].append(copy.deepcopy(FOREIGN_CODING))
    return out


def server_state(case, version: str) -> dict[ResourceKey, dict[str, Any]]:
    """The case as a server holds it after a push: ids assigned, references resolved, others' additions."""
    keys = case_to_resources(case, version, SYSTEM)
    ids = {key: f"srv-{n}" for n, key in enumerate(keys)}
    built = case_to_resources(case, version, SYSTEM, server_ids=ids)
    return {key: server_copy(r) for key, r in built.items()}


def diff(before: dict, after: dict) -> dict[ResourceKey, set[tuple]]:
    return {k: p for k in after if (p := changed_paths(before.get(k), after[k]))}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_an_unchanged_case_gives_back_the_server_copies_exactly(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    assert case_to_resources(case, version, SYSTEM, base) == base


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_what_others_wrote_does_not_change_what_the_case_reads(version: str) -> None:
    case = full_case()
    assert resources_to_case(server_state(case, version).values(), version, SYSTEM) == case


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_new_due_date_changes_only_the_goal_target_due_date(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    goals = [case.goals[0].model_copy(update={"due": D(2024, 7, 1)}), case.goals[1]]
    after = case_to_resources(case.model_copy(update={"goals": goals}), version, SYSTEM, base)
    assert diff(base, after) == {ResourceKey("Goal", "goal-1"): {("target", 0, "dueDate")}}
    assert after[ResourceKey("Goal", "goal-1")]["target"][0]["dueDate"] == "2024-07-01"


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_display_an_ehr_gave_a_reference_to_a_party_the_case_knows_no_name_of_stays(version: str) -> None:
    # Epic and Cerner dress every Reference with a display; a case whose patient has no name (an
    # episode without one) must not take those away, on every update, from the resources it wrote.
    case = full_case()
    case = case.model_copy(update={"patient": case.patient.model_copy(update={"name": None}), "team": []})
    base = server_state(case, version)
    for resource in base.values():
        if resource.get("subject", {}).get("reference") == "Patient/pat-1":
            resource["subject"]["display"] = "Mrs. Ann Example"
    goal = ResourceKey("Goal", "goal-1")
    assert base[goal]["subject"]["display"] == "Mrs. Ann Example"

    unchanged = case_to_resources(case, version, SYSTEM, base)
    goals = [case.goals[0].model_copy(update={"due": D(2024, 7, 1)}), case.goals[1]]
    edited = case_to_resources(case.model_copy(update={"goals": goals}), version, SYSTEM, base)

    assert unchanged == base
    assert diff(base, edited) == {goal: {("target", 0, "dueDate")}}


DATA_ABSENT = {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_value_written_where_the_server_copy_said_it_was_unknown_takes_the_absence_reason_away(
    version: str,
) -> None:
    # US Core senders mark what they do not know with a data-absent-reason; a value written there
    # must not go out still saying "unknown" beside it. Other extensions on the element stay.
    case = full_case()
    base = server_state(case, version)
    request = base[ResourceKey("ServiceRequest", "ref-2")]
    assert "occurrenceDateTime" not in request  # no due date
    request["_occurrenceDateTime"] = {"extension": [copy.deepcopy(DATA_ABSENT), copy.deepcopy(FOREIGN_EXT)]}
    goal = base[ResourceKey("Goal", "goal-2")]
    assert "target" not in goal  # no due date, no measure
    goal["target"] = [{"extension": [copy.deepcopy(DATA_ABSENT)]}]
    untouched = copy.deepcopy(base)
    read = resources_to_case(base.values(), version, SYSTEM)
    referrals = [r.model_copy(update={"due": D(2024, 3, 1)}) if r.id == "ref-2" else r for r in read.referrals]
    goals = [read.goals[0], read.goals[1].model_copy(update={"due": D(2024, 7, 1)})]

    after = case_to_resources(read.model_copy(update={"referrals": referrals, "goals": goals}), version, SYSTEM, base)

    written = after[ResourceKey("ServiceRequest", "ref-2")]
    assert written["occurrenceDateTime"] == "2024-03-01"
    assert written["_occurrenceDateTime"] == {"extension": [FOREIGN_EXT]}
    assert after[ResourceKey("Goal", "goal-2")]["target"] == [{"dueDate": "2024-07-01"}]
    assert base == untouched  # the server copies are not changed on the way


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_new_achievement_replaces_the_concept_it_no_longer_means(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    base[ResourceKey("Goal", "goal-1")]["achievementStatus"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "improving"}]
    }
    goals = [case.goals[0].model_copy(update={"achievement": "achieved"}), case.goals[1]]
    after = case_to_resources(case.model_copy(update={"goals": goals}), version, SYSTEM, base)
    changed = diff(base, after)
    assert set(changed) == {ResourceKey("Goal", "goal-1")}
    assert all(p[0] == "achievementStatus" for p in changed[ResourceKey("Goal", "goal-1")])
    codes = {c["code"] for c in after[ResourceKey("Goal", "goal-1")]["achievementStatus"]["coding"]}
    assert codes == {"achieved"}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_accepting_a_referral_changes_only_the_task_status(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    accepted = move_referral(case.referrals[0], ReferralStatus.ACCEPTED)
    after = case_to_resources(
        case.model_copy(update={"referrals": [accepted, case.referrals[1]]}), version, SYSTEM, base
    )
    # requested and accepted are both an "active" ServiceRequest: only the Task knows the difference.
    assert diff(base, after) == {ResourceKey("Task", "ref-1-task"): {("status",)}}
    assert after[ResourceKey("Task", "ref-1-task")]["status"] == "accepted"


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_putting_a_case_on_hold_touches_status_and_history_only(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    paused = case.model_copy(deep=True)
    paused.change_status(CaseStatus.ON_HOLD, D(2024, 3, 1), reason="in hospital")
    after = case_to_resources(paused, version, SYSTEM, base)
    changed = diff(base, after)
    eoc = ResourceKey("EpisodeOfCare", "case-1")
    assert changed[eoc] == {("status",), ("statusHistory",)}
    assert after[eoc]["statusHistory"][0] == base[eoc]["statusHistory"][0]
    assert after[eoc]["status"] == "onhold"
    history = after[eoc]["statusHistory"]
    assert [h["status"] for h in history] == ["planned", "active", "onhold"]
    assert history[1]["period"] == {"start": "2024-01-05", "end": "2024-03-01"}
    # The case status also drives the CarePlan and CareTeam status: those change, nothing else.
    assert changed[ResourceKey("CarePlan", "case-1-careplan")] == {("status",), ("text", "div")}
    assert changed[ResourceKey("CareTeam", "case-1-careteam")] == {("status",)}
    assert set(changed) == {eoc, ResourceKey("CarePlan", "case-1-careplan"), ResourceKey("CareTeam", "case-1-careteam")}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_ending_one_membership_leaves_the_other_participant_alone(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    team_key = ResourceKey("CareTeam", "case-1-careteam")
    base[team_key]["participant"][1]["extension"] = [copy.deepcopy(FOREIGN_EXT)]
    team = [case.team[0].model_copy(update={"end": D(2024, 4, 1)}), case.team[1]]
    after = case_to_resources(case.model_copy(update={"team": team}), version, SYSTEM, base)
    period = "coveragePeriod" if version == "R5" else "period"
    assert diff(base, after)[team_key] == {("participant", 0, period, "end")}
    assert after[team_key]["participant"][1] == base[team_key]["participant"][1]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_new_goal_is_added_to_the_plan_and_the_plan_keeps_its_other_references(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    plan_key = ResourceKey("CarePlan", "case-1-careplan")
    foreign_goal = {"reference": "Goal/ehr-goal-9", "display": "A goal the EHR added"}
    base[plan_key]["goal"].insert(0, foreign_goal)
    new_goal = case.goals[0].model_copy(update={"id": "goal-3", "description": "Register with a GP"})
    after = case_to_resources(case.model_copy(update={"goals": [*case.goals, new_goal]}), version, SYSTEM, base)
    goals = after[plan_key]["goal"]
    assert goals[:3] == base[plan_key]["goal"]
    assert goals[3]["reference"].startswith("urn:uuid:")
    assert diff(base, after)[plan_key] == {("goal",), ("text", "div")}
    assert ResourceKey("Goal", "goal-3") in after


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_narrative_written_by_someone_else_is_never_replaced(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    plan_key = ResourceKey("CarePlan", "case-1-careplan")
    base[plan_key]["text"] = copy.deepcopy(NARRATIVE)
    after = case_to_resources(case.model_copy(update={"plan_summary": "A new summary."}), version, SYSTEM, base)
    assert after[plan_key]["text"] == NARRATIVE
    assert diff(base, after) == {plan_key: {("description",)}}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_discharge_adds_end_and_disposition_and_moves_the_current_setting_only(version: str) -> None:
    case = full_case(
        stays=[
            full_case()
            .stays[0]
            .model_copy(update={"status": "in-progress", "end": None, "discharge_disposition": None})
        ]
    )
    base = server_state(case, version)
    discharged = case.stays[0].model_copy(
        update={"status": "finished", "end": D(2024, 1, 4), "discharge_disposition": "snf"}
    )
    after = case_to_resources(case.model_copy(update={"stays": [discharged]}), version, SYSTEM, base)
    period, admission = ("actualPeriod", "admission") if version == "R5" else ("period", "hospitalization")
    eoc = ResourceKey("EpisodeOfCare", "case-1")
    at = next(i for i, e in enumerate(base[eoc]["extension"]) if e["url"] == EXT_CURRENT_SETTING)
    setting = ("extension", at, "extension", 0, "valueCodeableConcept", "coding", 0)
    assert diff(base, after) == {
        ResourceKey("Encounter", "stay-1"): {("status",), (period, "end"), (admission,)},
        # The person is now in skilled nursing (not hospital) since the discharge: only that changes.
        eoc: {(*setting, "code"), (*setting, "display"), ("extension", at, "extension", 1, "valueDate")},
    }


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_resolving_a_need_sets_abatement_and_clinical_status(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    needs = [case.needs[0].model_copy(update={"resolved": D(2024, 5, 1)}), case.needs[1]]
    after = case_to_resources(case.model_copy(update={"needs": needs}), version, SYSTEM, base)
    need = ResourceKey("Condition", "need-1")
    assert diff(base, after) == {
        need: {
            ("abatementDateTime",),
            ("clinicalStatus", "coding", 0, "code"),
            ("clinicalStatus", "coding", 0, "display"),
        }
    }
    assert after[need]["clinicalStatus"]["coding"][0]["code"] == "resolved"


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_changed_contact_note_changes_only_the_payload(version: str) -> None:
    case = full_case()
    base = server_state(case, version)
    contacts = [case.contacts[0].model_copy(update={"note": "Visit rescheduled"})]
    after = case_to_resources(case.model_copy(update={"contacts": contacts}), version, SYSTEM, base)
    ((key, paths),) = diff(base, after).items()
    assert key == ResourceKey("Communication", "contact-1")
    assert {p[:2] for p in paths} == {("payload", 0)}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_resource_from_another_system_imports_and_exports_unchanged(version: str) -> None:
    """An EpisodeOfCare written by an EHR: no identifier of ours, an HL7 type code, past statuses only."""
    period_status = {"status": "planned", "period": {"start": "2024-01-02", "end": "2024-01-05"}}
    ehr_episode = {
        "resourceType": "EpisodeOfCare",
        "id": "ehr-eoc-7",
        "meta": {"versionId": "12"},
        "text": copy.deepcopy(NARRATIVE),
        "extension": [copy.deepcopy(FOREIGN_EXT)],
        "identifier": [{"system": "http://ehr.example.org/episodes", "value": "E-7"}],
        "status": "active",
        "statusHistory": [period_status],
        "type": [
            {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/episodeofcare-type", "code": "hacc"}],
                "text": "Home and community care",
            }
        ],
        "patient": {"reference": "Patient/pat-1"},
        "managingOrganization": {"reference": "Organization/ehr-org"},
        "period": {"start": "2024-01-02T09:30:00+01:00"},
    }
    case = resources_to_case([ehr_episode], version, SYSTEM)
    assert (case.id, case.programme, case.status) == ("ehr-eoc-7", "health-care", "active")
    assert [(h.status, h.start, h.end) for h in case.status_history] == [
        ("referred", D(2024, 1, 2), D(2024, 1, 5)),
        ("active", D(2024, 1, 5), None),
    ]
    key = ResourceKey("EpisodeOfCare", "ehr-eoc-7")
    out = case_to_resources(case, version, SYSTEM, {key: ehr_episode})
    assert out[key] == ehr_episode


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_leftover_urn_references_in_server_copies_become_type_id_and_the_copies_stay_as_they_were(version: str) -> None:
    """A server copy may keep the ``urn:uuid:`` of the transaction that created it: once the server
    ids are known the update names the resources by id, and the copies themselves are not changed."""
    case = full_case()
    built = case_to_resources(case, version, SYSTEM)  # references between them by urn:uuid
    copies = {key: {**resource, "id": f"srv-{n}"} for n, (key, resource) in enumerate(built.items())}
    assert any(r.startswith("urn:uuid:") for c in copies.values() for r in iter_references(c))
    before = copy.deepcopy(copies)

    updated = case_to_resources(case, version, SYSTEM, copies)

    assert copies == before
    ids = {f"{key.type}/{c['id']}" for key, c in copies.items()}
    named = [r for resource in updated.values() for r in iter_references(resource)]
    assert not [r for r in named if r.startswith("urn:uuid:")]
    assert {r for r in named if r.split("/")[0] in {k.type for k in copies}} <= ids
