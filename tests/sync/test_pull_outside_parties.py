"""A case's resource naming another server's Practitioner or Organization (the hospital's CareTeam
listing a GP of another trust, an episode managed from elsewhere) names an outside party: the pull
reads it as such, never as the local record of the same id, and a push after a local change keeps
the reference exactly as the hospital wrote it and makes no local record for it (against sekmet,
which keeps an absolute reference as written)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Acuity, Party
from fhir_cm.fhir import AsyncFhirClient, ResourceNotFound
from fhir_cm.store import Store, get_ledger, list_cases, save_case
from fhir_cm.sync import pull, push_pending, track_transitions
from tests.mapping.builders import full_case
from tests.sync.seeding import put_organisations, seed_case
from tests.sync.server_state import provenances_for
from tests.sync.test_pull_server import stored
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server

OTHER = "https://other.example/fhir"


async def test_outside_parties_are_pulled_as_outside_and_pushed_back_as_written(
    store: Store, raw: AsyncFhirClient, client: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    case = full_case(id=f"case-{tag}", patient=Party(kind="patient", id=f"pat-{tag}"))
    seeded = await seed_case(raw, case, settings.identifier_system)
    # A local practitioner the other server's one shares an id with, and one id only the other server has.
    namesake, far = f"pr-{tag}", f"far-{tag}"
    await raw.update({"resourceType": "Practitioner", "id": namesake, "name": [{"text": "Local Namesake"}]})
    team: dict[str, Any] = seeded[f"CareTeam/{case.id}-careteam"]
    member = {
        "reference": f"{OTHER}/Practitioner/{namesake}",
        "type": "Practitioner",
        "display": "Dr Elsewhere",
    }
    pharmacist = {"coding": [{"system": "http://snomed.info/sct", "code": "46255001"}]}
    team["participant"].append({"id": "p-else", "role": [pharmacist], "member": member})
    await raw.update(team)
    episode: dict[str, Any] = seeded[f"EpisodeOfCare/{case.id}"]
    manager = {"reference": f"{OTHER}/Practitioner/{far}", "display": "Dr Far Away"}
    episode["careManager"] = manager
    await raw.update(episode)

    report = await pull(store, raw, settings)

    assert report.quarantined == 0
    held = stored(store, case.id)
    (outside,) = [m for m in held.team if m.id == "p-else"]
    assert outside.party.model_dump(exclude_none=True) == {
        "kind": "practitioner",
        "id": namesake,
        "name": "Dr Elsewhere",
        "server": OTHER,
    }
    assert held.case_manager is not None
    assert held.case_manager.model_dump(exclude_none=True) == {
        "kind": "practitioner",
        "id": far,
        "name": "Dr Far Away",
        "server": OTHER,
    }
    with store.session(read_only=True) as s:  # in no local practitioner's caseload
        assert list_cases(s, case_manager=far) == []

    with store.session() as s:  # a case manager's edit, then the push
        save_case(s, held.model_copy(update={"acuity": Acuity.LOW}))
    pushed = await push_pending(store, client, settings)

    assert (pushed.failed, pushed.conflicts) == (0, 0) and pushed.updated >= 1
    after_team = await raw.read("CareTeam", team["id"])
    assert [p["member"] for p in after_team["participant"] if p.get("id") == "p-else"] == [member]
    after_episode = await raw.read("EpisodeOfCare", episode["id"])
    assert after_episode["careManager"] == manager
    assert any(e.get("valueCodeableConcept") for e in after_episode["extension"])  # the edit went
    plan = await raw.read("CarePlan", seeded[f"CarePlan/{case.id}-careplan"]["id"])
    assert plan["author"]["reference"] == manager["reference"]  # the manager, not a local namesake
    with pytest.raises(ResourceNotFound):  # no local record made up for another server's practitioner
        await raw.read("Practitioner", far)
    assert (await raw.read("Practitioner", namesake))["meta"]["versionId"] == "1"
    # The update was made on no one's behalf here: the outside manager asked for none of it.
    agents = [a for p in await provenances_for(raw, [f"EpisodeOfCare/{episode['id']}"]) for a in p["agent"]]
    assert agents and [a.get("onBehalfOf") for a in agents] == [None] * len(agents)


async def test_a_stay_at_another_servers_organisation_brings_that_one_onto_the_team_not_the_local_namesake(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:10]
    patient, hospital, snf = f"pat-{tag}", f"hosp-{tag}", f"snf-{tag}"
    await put_organisations(raw, hospital, snf)  # a local Organization under the other server's SNF's id
    case = await enrol(store, raw, settings, tag)
    elsewhere = f"{OTHER}/Organization/{snf}"
    nursing = encounter(patient, "NONAC", "2024-03-05", "2024-03-20", snf, role="SNF", disposition="home")
    nursing["serviceProvider"] = {"reference": elsewhere, "display": "Far Nursing Home"}
    await raw.create(encounter(patient, "IMP", "2024-03-01", "2024-03-05", hospital, disposition="snf"))
    await raw.create(nursing)

    report = await track_transitions(store, raw, settings)

    assert report.failed == {} and report.team_members_added == 1
    tracked = stored(store, case.id)
    outside = Party(kind="organisation", id=snf, name="Far Nursing Home", server=OTHER)
    assert [s.provider for s in tracked.stays if s.setting == "skilled-nursing"] == [outside]
    assert [m.party for m in tracked.team] == [outside]
    sent = await push_pending(store, raw, settings)
    assert sent.ok, sent.failures
    with store.session(read_only=True) as s:
        entry = get_ledger(s, raw.base_url, "CareTeam", f"{case.id}-careteam")
    assert entry is not None and entry.server_id
    team = await raw.read("CareTeam", entry.server_id)
    assert [p["member"]["reference"] for p in team["participant"]] == [elsewhere]
