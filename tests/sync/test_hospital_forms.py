"""What a hospital's copies say in forms the mapping does not write, pulled from the real server and
pushed back: partial dates ("2024", "2024-06"), a day's element in another of its forms, a letter as
a contact's payload."""

from __future__ import annotations

import datetime as dt

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import GoalStatus
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case_record, save_case, stored_dates_as_written
from fhir_cm.sync import pull, push_pending
from tests.sync.seeding import seed_case
from tests.sync.test_pull_server import a_case, stored

pytestmark = pytest.mark.server


async def test_a_case_dated_by_year_and_month_is_read_and_pushed_back_as_the_hospital_wrote_it(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    # The hospital's own copies say only the year the episode began (and keep no status history
    # that would say the day), the month a goal is due, and the months of a stay: valid FHIR dates,
    # each a span rather than a day.
    episode = {**seeded[f"EpisodeOfCare/{case.id}"], "period": {"start": "2024"}}
    del episode["statusHistory"]
    goal = seeded["Goal/goal-1"]
    goal = {**goal, "target": [{**goal["target"][0], "dueDate": "2024-06"}]}
    stay = seeded["Encounter/stay-1"]
    stay = {**stay, "period": {"start": "2023-12", "end": "2024-01"}}
    for resource in (episode, goal, stay):
        await raw.update(resource)

    report = await pull(store, raw, settings)

    assert (report.quarantined, report.new_cases) == (0, 1)
    held = stored(store, case.id)
    assert held.period.start == dt.date(2024, 1, 1)  # sorts and filters as the year's start
    assert {g.id: g.due for g in held.goals}["goal-1"] == dt.date(2024, 6, 30)  # due by the end of June
    (read_stay,) = held.stays
    assert (read_stay.start, read_stay.end) == (dt.date(2023, 12, 1), dt.date(2024, 1, 31))

    # A local change elsewhere in the case is pushed; the dates it did not change keep their precision.
    goals = [g.model_copy(update={"status": GoalStatus.COMPLETED}) if g.id == "goal-2" else g for g in held.goals]
    with store.session() as s:
        save_case(s, held.model_copy(update={"goals": goals}))
    pushed = await push_pending(store, client, settings)

    assert (pushed.failed, pushed.conflicts) == (0, 0) and pushed.updated >= 1
    assert (await raw.read("EpisodeOfCare", episode["id"]))["period"] == {"start": "2024"}
    assert (await raw.read("Goal", goal["id"]))["target"][0]["dueDate"] == "2024-06"
    assert (await raw.read("Encounter", stay["id"]))["period"] == {"start": "2023-12", "end": "2024-01"}
    assert (await raw.read("Goal", seeded["Goal/goal-2"]["id"]))["lifecycleStatus"] == "completed"


async def test_a_day_set_takes_the_place_of_the_hospital_s_other_form_of_the_element(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    """A day the case manager sets where the hospital's copy holds another form of the same choice element.

    A Goal due "in 3 months" (``target.dueDuration``), a referral for a period (``occurrencePeriod``), a
    need abated "last spring" (``abatementString``): each reads as no day. Set one in the case, the
    update writes the day in place of the other form — writing it beside, the resource held two forms of
    one element, which FHIR forbids and the server refused, so the case could never be pushed."""
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    goal, referral, need = seeded["Goal/goal-2"], seeded["ServiceRequest/ref-2"], seeded["Condition/need-1"]
    goal = {**goal, "target": [{"measure": {"text": "walks"}, "dueDuration": {"value": 3, "unit": "mo"}}]}
    referral = {**referral, "occurrencePeriod": {"start": "2024-02-01"}}
    need = {**need, "abatementString": "last spring", "_abatementString": {"id": "a1"}}
    need["clinicalStatus"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]
    }
    for resource in (goal, referral, need):
        await raw.update(resource)
    assert (await pull(store, raw, settings)).quarantined == 0

    held = stored(store, case.id)
    day = dt.date(2024, 5, 1)
    edited = held.model_copy(
        update={
            "goals": [g.model_copy(update={"due": day}) if g.id == "goal-2" else g for g in held.goals],
            "referrals": [r.model_copy(update={"due": day}) if r.id == "ref-2" else r for r in held.referrals],
            "needs": [n.model_copy(update={"resolved": day}) if n.id == "need-1" else n for n in held.needs],
        }
    )
    with store.session() as s:
        save_case(s, edited)
    pushed = await push_pending(store, client, settings)

    assert (pushed.failed, pushed.conflicts) == (0, 0), pushed
    goal = await raw.read("Goal", goal["id"])
    assert [{k: v for k, v in t.items() if k.startswith("due")} for t in goal["target"]] == [{"dueDate": "2024-05-01"}]
    referral = await raw.read("ServiceRequest", referral["id"])
    assert referral["occurrenceDateTime"] == "2024-05-01" and "occurrencePeriod" not in referral
    need = await raw.read("Condition", need["id"])
    assert need["abatementDateTime"] == "2024-05-01"
    assert not {"abatementString", "_abatementString"} & set(need)


async def test_a_note_added_to_a_contact_the_hospital_sent_as_a_letter_is_a_payload_of_its_own(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    """The hospital's Communication carries a letter (``payload.contentAttachment``) and no note; the
    case manager's note is a second payload — written into the letter's, ``content[x]`` had two forms
    and the server refused the push — and the letter stays."""
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    letter = {"contentAttachment": {"contentType": "application/pdf", "url": "https://hospital.example/letter.pdf"}}
    contact = {**seeded["Communication/contact-1"], "payload": [letter]}
    await raw.update(contact)
    assert (await pull(store, raw, settings)).quarantined == 0
    held = stored(store, case.id)
    assert [c.note for c in held.contacts] == [None]

    noted = [c.model_copy(update={"note": "Called about the letter."}) for c in held.contacts]
    with store.session() as s:
        save_case(s, held.model_copy(update={"contacts": noted}))
    pushed = await push_pending(store, client, settings)

    assert (pushed.failed, pushed.conflicts, pushed.updated) == (0, 0, 1), pushed
    on_server = await raw.read("Communication", contact["id"])
    assert on_server["payload"] == [letter, {"contentString": "Called about the letter."}]


async def test_a_goal_saying_when_in_its_second_target_is_pulled_with_that_due_day(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    measured = {"measure": {"text": "HbA1c"}, "detailQuantity": {"value": 7, "unit": "%"}}
    goal = {
        **seeded["Goal/goal-1"],
        "target": [measured, {"measure": {"text": "lease signed"}, "dueDate": "2024-06-01"}],
    }
    await raw.update(goal)

    report = await pull(store, raw, settings)

    assert (report.quarantined, report.new_cases) == (0, 1)
    assert {g.id: g.due for g in stored(store, case.id).goals}["goal-1"] == dt.date(2024, 6, 1)


async def test_a_pull_keeps_with_the_case_what_the_hospital_wrote_as_a_month(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """The caseload reads no resource: what a pulled copy writes as a month is kept with the case, as the
    case's read works it out from the copies, and a copy that gives the day since takes it away."""
    case = a_case()
    seeded = await seed_case(raw, case, settings.identifier_system)
    referral = {**seeded["ServiceRequest/ref-1"], "occurrenceDateTime": "2024-01"}
    await raw.update(referral)
    assert (await pull(store, raw, settings)).quarantined == 0

    def held() -> tuple[int, dict[str, str], dict[str, str]]:
        with store.session(read_only=True) as s:
            record = get_case_record(s, case.id)
            assert record is not None
            return (
                record.revision,
                record.dates_as_written,
                stored_dates_as_written(s, record.case, settings.identifier_system),
            )

    revision, kept, worked_out = held()
    index = [r.id for r in stored(store, case.id).referrals].index("ref-1")
    assert kept == worked_out and kept[f"/referrals/{index}/due"] == "2024-01"

    # The hospital gives the day since: the same day, the case's content the same; what was written goes.
    await raw.update({**(await raw.read("ServiceRequest", referral["id"])), "occurrenceDateTime": "2024-01-31"})
    await pull(store, raw, settings)
    later, kept, worked_out = held()
    assert later > revision and kept == worked_out and f"/referrals/{index}/due" not in kept
