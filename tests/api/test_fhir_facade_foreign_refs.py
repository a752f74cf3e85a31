"""Reference search values by absolute URL: another server's ``Patient/1`` is not this façade's.

FHIR (search, reference parameters): an absolute URL matches resources whose reference is that
URL, and is the relative ``Type/id`` only at the server's own base. The façade's own bases are the
URL it is served at (the request's, or its configured public one) and the FHIR server it syncs
with (the one its pulled copies came from, whose references the pull reads as local).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fhir_cm.api.facade import FacadeIndex
from fhir_cm.api.routes.fhir import build_fhir_router
from fhir_cm.domain import Case, Party, TeamMember
from fhir_cm.mapping import ResourceKey, case_plan, case_to_resources
from fhir_cm.store import Store, open_store, put_resources, save_case
from fhir_cm.synthetic import generate_cases

SYSTEM = "urn:fhir-cm:id"
T0 = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
HOSPITAL = "https://hospital.example/fhir"
OTHER = "https://other.example/fhir"


def reader() -> str:
    return "service"


def client_for(store: Store, *, bases: tuple[str, ...] = ()) -> TestClient:
    app = FastAPI()
    index = FacadeIndex(SYSTEM, bases=bases)
    app.include_router(build_fhir_router(lambda: store, reader, identifier_system=SYSTEM, index=index))
    return TestClient(app)


@pytest.fixture
def cases() -> list[Case]:
    return list(generate_cases(4, 23))


@pytest.fixture
def store(tmp_path: Path, cases: list[Case]) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        with opened.session() as s:
            for case in cases:
                save_case(s, case, now=T0)
        yield opened


def ids(client: TestClient, url: str, mode: str = "match") -> set[str]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return {e["resource"]["id"] for e in response.json().get("entry", []) if e["search"]["mode"] == mode}


def pulled_plan_naming_its_goal_at(store: Store, case: Case, base: str, goal: str | None = None) -> tuple[str, str]:
    """Store the case's CarePlan as pulled from HOSPITAL, naming its first goal (or ``goal``) at ``base``
    (a server whose ids are the business identifiers, as the façade's are); its id and the goal's."""
    plan_id, goal = f"{case.id}-careplan", goal or case.goals[0].id
    server_ids = {k: k.value for k, _, _ in case_plan(case)}
    plan = dict(case_to_resources(case, "R4", SYSTEM, server_ids=server_ids)[ResourceKey("CarePlan", plan_id)])
    plan["goal"] = [{"reference": f"{base}/Goal/{goal}"}, *plan["goal"][1:]]
    with store.session() as s:
        put_resources(s, case.id, [(plan_id, plan)], fhir_version="R4", source=HOSPITAL, now=T0)
    return plan_id, goal


def test_a_patient_on_another_server_is_not_the_local_patient_of_that_id(store: Store, cases: list[Case]) -> None:
    case = cases[0]
    pid, goals = case.patient.id, {g.id for g in case.goals}
    client = client_for(store)
    assert ids(client, f"/fhir/Goal?subject=Patient/{pid}") == goals
    for param in ("subject", "patient", "subject:Patient"):
        assert ids(client, f"/fhir/Goal?{param}={OTHER}/Patient/{pid}") == set(), param
    assert ids(client, f"/fhir/EpisodeOfCare?patient={OTHER}/Patient/{pid}") == set()
    # OR: the other server's patient adds nothing; the local one still answers.
    assert ids(client, f"/fhir/Goal?subject={OTHER}/Patient/{pid},Patient/{pid}") == goals


def test_an_absolute_url_at_the_facades_own_base_is_the_relative_reference(store: Store, cases: list[Case]) -> None:
    case = cases[1]
    pid, goals = case.patient.id, {g.id for g in case.goals}
    client = client_for(store)
    # The test client is served at http://testserver: the façade's base is http://testserver/fhir.
    assert ids(client, f"/fhir/Goal?subject=http://testserver/fhir/Patient/{pid}") == goals
    assert ids(client, f"/fhir/Goal?subject=http://testserver/fhir/Patient/{pid}/_history/3") == goals
    assert ids(client, f"/fhir/Goal?subject=http://testserver/elsewhere/Patient/{pid}") == set()
    # Behind a proxy the façade is reached at its public URL, and the server it syncs with is its own too.
    proxied = client_for(store, bases=("https://cm.example.org/fhir", HOSPITAL + "/"))
    assert ids(proxied, f"/fhir/Goal?subject=https://CM.example.org/fhir/Patient/{pid}") == goals
    assert ids(proxied, f"/fhir/Goal?subject={HOSPITAL}/Patient/{pid}") == goals
    assert ids(proxied, f"/fhir/Goal?subject={OTHER}/Patient/{pid}") == set()


def test_a_pulled_copy_naming_its_servers_base_is_read_as_the_pull_read_it(store: Store, cases: list[Case]) -> None:
    """The pull stores a CarePlan naming its goal at the server's base; the mapping keeps that
    spelling. It is the local goal: searched and included by id, and by that exact URL."""
    plan_id, goal = pulled_plan_naming_its_goal_at(store, cases[2], HOSPITAL)
    client = client_for(store)
    assert client.get(f"/fhir/CarePlan/{plan_id}").json()["goal"][0] == {"reference": f"{HOSPITAL}/Goal/{goal}"}
    assert ids(client, f"/fhir/CarePlan?goal={goal}") == {plan_id}
    assert ids(client, f"/fhir/CarePlan?goal={HOSPITAL}/Goal/{goal}") == {plan_id}, "the reference as stored"
    assert goal in ids(client, f"/fhir/CarePlan?_id={plan_id}&_include=CarePlan:goal", "include")


def test_a_reference_to_another_servers_resource_neither_matches_nor_includes_the_local_one(
    store: Store, cases: list[Case]
) -> None:
    # Another server's Goal under the id of a goal the façade serves (another case's): not that goal.
    plan_id, goal = pulled_plan_naming_its_goal_at(store, cases[3], OTHER, cases[0].goals[0].id)
    client = client_for(store, bases=(HOSPITAL,))
    assert client.get(f"/fhir/CarePlan/{plan_id}").json()["goal"][0] == {"reference": f"{OTHER}/Goal/{goal}"}
    assert plan_id not in ids(client, f"/fhir/CarePlan?goal={goal}")
    assert ids(client, f"/fhir/CarePlan?goal={OTHER}/Goal/{goal}") == {plan_id}, "exactly that URL"
    assert goal not in ids(client, f"/fhir/CarePlan?_id={plan_id}&_include=CarePlan:goal", "include")
    assert plan_id not in ids(client, f"/fhir/Goal?_id={goal}&_revinclude=CarePlan:goal", "include")


@pytest.mark.parametrize(
    "value",
    [
        "https://",
        "https:///Patient/1",
        "https://other.example/fhir/Patient/",
        "http://[bad/fhir/Patient/1",
        "http:/other.example/Patient/1",
        "other.example/fhir/Patient/1",
    ],
)
def test_a_malformed_absolute_reference_is_a_400_operation_outcome(store: Store, value: str) -> None:
    response = client_for(store).get("/fhir/Goal", params={"subject": value})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "invalid"


def test_a_member_or_manager_on_another_server_is_found_by_that_url_only_and_served_as_written(
    store: Store, cases: list[Case]
) -> None:
    """The pull read the CareTeam's member and the episode's manager at OTHER as outside parties (of ids
    no local practitioner has here, ``pr-x`` and ``far``): ``participant=Practitioner/pr-x`` is the local
    practitioner, and finds nothing; the member is served as the hospital wrote it."""
    case = cases[0]
    member = Party(kind="practitioner", id="pr-x", name="Dr Elsewhere", server=OTHER)
    manager = Party(kind="practitioner", id="far", name="Dr Far Away", server=OTHER)
    case = case.model_copy(
        update={"case_manager": manager, "team": [*case.team, TeamMember(id="tm-x", role="pharmacist", party=member)]}
    )
    team_id, episode_id = f"{case.id}-careteam", case.id
    server_ids = {k: k.value for k, _, _ in case_plan(case)}
    team = dict(case_to_resources(case, "R4", SYSTEM, server_ids=server_ids)[ResourceKey("CareTeam", team_id)])
    written = {"reference": f"{OTHER}/Practitioner/pr-x", "type": "Practitioner", "display": "Dr Elsewhere"}
    team["participant"] = [{**p, "member": written} if p.get("id") == "tm-x" else p for p in team["participant"]]
    with store.session() as s:
        save_case(s, case, now=T0)
        put_resources(s, case.id, [(team_id, team)], fhir_version="R4", source=HOSPITAL, now=T0)
    client = client_for(store, bases=(HOSPITAL,))

    served = client.get(f"/fhir/CareTeam/{team_id}").json()
    assert [p["member"] for p in served["participant"] if p.get("id") == "tm-x"] == [written]
    assert ids(client, "/fhir/CareTeam?participant=Practitioner/pr-x") == set()
    assert ids(client, f"/fhir/CareTeam?participant={HOSPITAL}/Practitioner/pr-x") == set()
    assert ids(client, f"/fhir/CareTeam?participant={OTHER}/Practitioner/pr-x") == {team_id}
    assert ids(client, "/fhir/EpisodeOfCare?care-manager=far") == set()
    assert ids(client, f"/fhir/EpisodeOfCare?care-manager={OTHER}/Practitioner/far") == {episode_id}
    local = next(m.party for m in case.team if m.party.kind == "practitioner" and m.party.server is None)
    assert team_id in ids(client, f"/fhir/CareTeam?participant=Practitioner/{local.id}")
