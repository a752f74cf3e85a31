"""Push leaves other systems' resources alone: a hospital's Encounters, read as stays of a case, are
not written back unless the case manager changed what the case reads from them."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, save_case
from fhir_cm.sync import push_cases, push_pending, track_transitions
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter

pytestmark = pytest.mark.server


async def a_case_with_hospital_stays(store: Store, raw: AsyncFhirClient, settings: Settings) -> tuple[Case, list[str]]:
    """A pushed case whose patient a hospital then records two Encounters for; tracked, not yet pushed."""
    tag = uuid.uuid4().hex[:10]
    case = Case(
        id=f"case-{tag}",
        programme="health-care",
        period=Period(start=dt.date(2024, 2, 20)),
        patient=Party(kind="patient", id=f"pat-{tag}"),
        case_manager=Party(kind="practitioner", id=f"cm-{tag}"),
    )
    await raw.update({"resourceType": "Patient", "id": case.patient.id, "active": True}, versioned=False)
    assert (await push_cases(store, raw, settings, [case])).ok
    await put_organisations(raw, f"hosp-{tag}", f"snf-{tag}")
    journey = [
        encounter(case.patient.id, "IMP", "2024-03-01", "2024-03-05", f"hosp-{tag}", disposition="snf"),
        encounter(case.patient.id, "NONAC", "2024-03-05", "2024-03-20", f"snf-{tag}", role="SNF"),
    ]
    ids = [(await raw.create(e)).id for e in journey]
    tracked = await track_transitions(store, raw, settings, case_id=case.id)
    assert tracked.stays_added == 2
    return case, ids


async def test_pushing_a_case_leaves_the_hospital_s_encounters_untouched(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    _, ids = await a_case_with_hospital_stays(store, raw, settings)
    before = [await raw.read("Encounter", i) for i in ids]

    pushed = await push_pending(store, client, settings)

    assert pushed.ok, pushed.failures
    assert pushed.created >= 1  # the follow-up the hospital discharge called for went out
    after = [await raw.read("Encounter", i) for i in ids]
    assert [a["meta"]["versionId"] for a in after] == [b["meta"]["versionId"] for b in before]
    assert all("episodeOfCare" not in a for a in after)
    again = await push_cases(store, client, settings, [])
    assert (again.created, again.updated) == (0, 0)


async def test_a_stay_the_case_manager_corrected_is_written_to_the_encounter(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case, ids = await a_case_with_hospital_stays(store, raw, settings)
    with store.session() as s:
        tracked = get_case(s, case.id)
        assert tracked is not None
        stays = [st.model_copy(update={"end": dt.date(2024, 3, 21)}) if st.id == ids[1] else st for st in tracked.stays]
        save_case(s, tracked.model_copy(update={"stays": stays}))
    before = await raw.read("Encounter", ids[1])

    pushed = await push_pending(store, client, settings)

    assert pushed.ok, pushed.failures
    after = await raw.read("Encounter", ids[1])
    assert int(after["meta"]["versionId"]) == int(before["meta"]["versionId"]) + 1
    assert after["period"]["end"] == "2024-03-21"
    # Only what the case manager changed: everything else as the hospital wrote it.
    assert {k: v for k, v in after.items() if k not in ("meta", "period")} == {
        k: v for k, v in before.items() if k not in ("meta", "period")
    }
    untouched = await raw.read("Encounter", ids[0])
    assert untouched["meta"]["versionId"] == "1"
