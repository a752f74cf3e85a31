"""The read-only FHIR facade over a SQLite store of synthetic cases: search, paging, read, versions, errors.

Expectations come from the domain (which entity ids a case has, who its patient is, when it was
saved) or from filtering the complete, unfiltered listing in this file's own code — never from the
facade's index — so a wrong extraction path or matcher shows up as a difference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from fhir_cm.api.routes.fhir import build_fhir_router
from fhir_cm.domain import Case, GoalStatus
from fhir_cm.store import Store, open_store, save_case
from fhir_cm.synthetic import generate_cases
from tests.mapping.fhir_check import validate, validate_bundle

SYSTEM = "urn:fhir-cm:id"
N_CASES = 14
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
READER = {"X-Reader": "service"}
TYPES = [
    "EpisodeOfCare",
    "CarePlan",
    "CareTeam",
    "Condition",
    "Encounter",
    "Goal",
    "ServiceRequest",
    "Task",
    "Communication",
]


def saved_at(i: int) -> dt.datetime:
    """Case ``i`` is saved at midnight UTC on 2025-01-(i+1)."""
    return T0 + dt.timedelta(days=i)


def stub_reader(x_reader: str | None = Header(default=None)) -> str:
    """Stands in for the API's auth dependency: 401 without the header, 403 with the wrong one."""
    if x_reader is None:
        raise HTTPException(401, "credentials required", headers={"WWW-Authenticate": 'Bearer realm="test"'})
    if x_reader != "service":
        raise HTTPException(403, "this role may not read the facade")
    return x_reader


def facade_app(store: Store, **options: Any) -> FastAPI:
    app = FastAPI()
    app.include_router(build_fhir_router(lambda: store, stub_reader, identifier_system=SYSTEM, **options))
    return app


@dataclass
class World:
    store: Store
    cases: list[Case]
    client: TestClient


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    cases = list(generate_cases(N_CASES, 11))
    path: Path = tmp_path_factory.mktemp("facade") / "store.db"
    store = open_store(f"sqlite:///{path}")
    with store.session() as s:
        for i, case in enumerate(cases):
            save_case(s, case, now=saved_at(i))
    with TestClient(facade_app(store)) as client:
        yield World(store, cases, client)
    store.close()


# --- helpers -------------------------------------------------------------------------------------------


def domain_ids(case: Case, rtype: str) -> set[str]:
    """The ids the facade must serve for a case, straight from the domain model."""
    return {
        "EpisodeOfCare": {case.id},
        "CarePlan": {f"{case.id}-careplan"},
        "CareTeam": {f"{case.id}-careteam"} if case.team else set(),
        "Condition": {n.id for n in case.needs},
        "Goal": {g.id for g in case.goals},
        "ServiceRequest": {r.id for r in case.referrals},
        "Task": {f"{r.id}-task" for r in case.referrals},
        "Communication": {c.id for c in case.contacts},
        "Encounter": {s.id for s in case.stays},
    }[rtype]


def get(client: TestClient, url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.get(url, headers=READER if headers is None else headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    return body


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((entry["url"] for entry in bundle["link"] if entry["relation"] == relation), None)


def walk(
    client: TestClient, url: str, headers: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every match of a search, following ``next`` links to the end; also the pages seen."""
    pages, found = [], []
    next_url: str | None = url
    while next_url is not None:
        page = get(client, next_url, headers)
        pages.append(page)
        found += matches(page)
        next_url = link(page, "next")
        assert len(pages) <= 500, "next links do not end"
    return found, pages


def search_ids(client: TestClient, url: str, headers: dict[str, str] | None = None) -> set[str]:
    found, pages = walk(client, url, headers)
    ids = [r["id"] for r in found]
    assert len(ids) == len(set(ids)), "a resource came twice"
    assert all(p["total"] == len(ids) for p in pages)
    return set(ids)


@pytest.fixture(scope="module")
def listing(world: World) -> dict[str, list[dict[str, Any]]]:
    """Every resource of every type, unfiltered, in R4."""
    return {rtype: walk(world.client, f"/fhir/{rtype}?_count=200")[0] for rtype in TYPES}


def codings(resource: dict[str, Any], element: str) -> set[tuple[str | None, str]]:
    return {(c.get("system"), c["code"]) for cc in resource.get(element, []) for c in cc.get("coding", [])}


# --- what is served -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rtype", TYPES)
def test_every_resource_of_every_case_is_served_under_its_business_identifier(
    world: World, listing: dict[str, list[dict[str, Any]]], rtype: str
) -> None:
    expected = set().union(*(domain_ids(c, rtype) for c in world.cases))
    assert expected, f"the synthetic cases have no {rtype}: the test would prove nothing"
    served = listing[rtype]
    assert {r["id"] for r in served} == expected
    for resource in served:
        assert {"system": SYSTEM, "value": resource["id"]} in resource["identifier"]
    assert [r["id"] for r in served] == sorted(r["id"] for r in served), "results are in id order"


def test_references_between_a_cases_resources_resolve_against_the_facade(
    world: World, listing: dict[str, list[dict[str, Any]]]
) -> None:
    served = {(rtype, r["id"]) for rtype, resources in listing.items() for r in resources}
    tasks = listing["Task"]
    assert tasks
    for task in tasks:
        rtype, rid = task["focus"]["reference"].split("/")
        assert (rtype, rid) in served
        assert world.client.get(f"/fhir/{rtype}/{rid}", headers=READER).status_code == 200


@pytest.mark.parametrize("rtype", TYPES)
def test_read_returns_the_resource_the_search_lists_with_etag_and_last_modified(
    world: World, listing: dict[str, list[dict[str, Any]]], rtype: str
) -> None:
    resource = listing[rtype][len(listing[rtype]) // 2]
    response = world.client.get(f"/fhir/{rtype}/{resource['id']}", headers=READER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json; fhirVersion=4.0"
    assert response.json() == resource
    assert response.headers["etag"] == f'W/"{resource["meta"]["versionId"]}"'
    last_modified = dt.datetime.strptime(response.headers["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")
    assert last_modified.replace(tzinfo=dt.UTC) == dt.datetime.fromisoformat(resource["meta"]["lastUpdated"])
    validate(response.json(), "R4")


# --- search parameters -----------------------------------------------------------------------------------


def test_patient_and_subject_find_the_resources_of_that_patients_cases(world: World) -> None:
    case = world.cases[3]
    pid = case.patient.id
    expected = {c.id for c in world.cases if c.patient.id == pid}
    assert expected == {case.id}
    for query in (
        f"patient={pid}",
        f"patient=Patient/{pid}",
        f"patient=http://testserver/fhir/Patient/{pid}",  # the façade's own base
        f"subject=Patient/{pid}",
        f"subject={pid}",
    ):
        assert search_ids(world.client, f"/fhir/EpisodeOfCare?{query}") == expected, query
        for rtype in ("Goal", "Task", "Encounter"):
            wanted = set().union(*(domain_ids(c, rtype) for c in world.cases if c.patient.id == pid))
            assert search_ids(world.client, f"/fhir/{rtype}?{query}") == wanted, (rtype, query)
    assert search_ids(world.client, f"/fhir/Goal?patient=https://elsewhere.example/fhir/Patient/{pid}") == set()
    assert search_ids(world.client, f"/fhir/Goal?patient=Group/{pid}") == set()
    assert search_ids(world.client, f"/fhir/Goal?subject=Practitioner/{pid}") == set()


def test_status_finds_goals_by_lifecycle_status(world: World) -> None:
    def goals(*statuses: GoalStatus) -> set[str]:
        return {g.id for c in world.cases for g in c.goals if g.status in statuses}

    active, completed = goals(GoalStatus.ACTIVE), goals(GoalStatus.COMPLETED)
    assert active and completed
    assert search_ids(world.client, "/fhir/Goal?status=active") == active
    assert search_ids(world.client, "/fhir/Goal?lifecycle-status=completed") == completed
    assert search_ids(world.client, "/fhir/Goal?status=active,completed") == active | completed  # comma: OR
    assert search_ids(world.client, "/fhir/Goal?status=active&status=completed") == set()  # repeated: AND


@pytest.mark.parametrize("rtype", ["EpisodeOfCare", "ServiceRequest", "Task", "Encounter", "Communication", "CarePlan"])
def test_status_matches_the_status_element(listing: dict[str, list[dict[str, Any]]], world: World, rtype: str) -> None:
    statuses = sorted({r["status"] for r in listing[rtype]})
    for status in statuses:
        expected = {r["id"] for r in listing[rtype] if r["status"] == status}
        assert search_ids(world.client, f"/fhir/{rtype}?status={status}") == expected
    assert search_ids(world.client, f"/fhir/{rtype}?status=no-such-status") == set()


def test_category_tokens_with_and_without_system(world: World, listing: dict[str, list[dict[str, Any]]]) -> None:
    sdoh = ("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh")
    conditions = listing["Condition"]
    with_sdoh = {r["id"] for r in conditions if sdoh in codings(r, "category")}
    assert with_sdoh and with_sdoh != {r["id"] for r in conditions}
    client = world.client
    assert search_ids(client, f"/fhir/Condition?category={sdoh[0]}|{sdoh[1]}") == with_sdoh
    assert search_ids(client, "/fhir/Condition?category=sdoh") == with_sdoh
    assert search_ids(client, "/fhir/Condition?category=|sdoh") == set()  # |code: no system
    assert search_ids(client, "/fhir/Condition?category=http://other.example/cs|sdoh") == set()
    domain_system = "https://fhir-cm.org/fhir/CodeSystem/assessment-domain"
    any_domain = {r["id"] for r in conditions if any(s == domain_system for s, _ in codings(r, "category"))}
    assert search_ids(client, f"/fhir/Condition?category={domain_system}|") == any_domain  # system|: any code
    plans = {r["id"] for r in listing["CarePlan"]}
    assert search_ids(client, "/fhir/CarePlan?category=assess-plan") == plans


def test_identifier_tokens(world: World) -> None:
    goal = world.cases[0].goals[0]
    client = world.client
    assert search_ids(client, f"/fhir/Goal?identifier={SYSTEM}|{goal.id}") == {goal.id}
    assert search_ids(client, f"/fhir/Goal?identifier={goal.id}") == {goal.id}
    assert search_ids(client, f"/fhir/Goal?identifier=|{goal.id}") == set()
    assert search_ids(client, f"/fhir/Goal?identifier=urn:other|{goal.id}") == set()
    every_goal = {g.id for c in world.cases for g in c.goals}
    assert search_ids(client, f"/fhir/Goal?identifier={SYSTEM}|") == every_goal
    other = world.cases[1].goals[0]
    assert search_ids(client, f"/fhir/Goal?_id={goal.id},{other.id}") == {goal.id, other.id}


def _goals_of_cases_saved(world: World, keep: Callable[[dt.datetime], bool]) -> set[str]:
    return {g.id for i, c in enumerate(world.cases) if keep(saved_at(i)) for g in c.goals}


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        ("ge2025-01-05", lambda t: t >= dt.datetime(2025, 1, 5, tzinfo=dt.UTC)),
        ("lt2025-01-05", lambda t: t < dt.datetime(2025, 1, 5, tzinfo=dt.UTC)),
        ("2025-01-03", lambda t: t.date() == dt.date(2025, 1, 3)),
        ("eq2025-01", lambda t: t.month == 1),
        ("gt2025-01-03", lambda t: t >= dt.datetime(2025, 1, 4, tzinfo=dt.UTC)),
        ("le2025-01-03", lambda t: t < dt.datetime(2025, 1, 4, tzinfo=dt.UTC)),
        ("ne2025-01-03", lambda t: t.date() != dt.date(2025, 1, 3)),
        ("gt2025-01-03T00:00:00Z", lambda t: t > dt.datetime(2025, 1, 3, tzinfo=dt.UTC)),
        ("ge2025-01-03T01:00:00%2B01:00", lambda t: t >= dt.datetime(2025, 1, 3, tzinfo=dt.UTC)),
        ("sa2025-01-10", lambda t: t >= dt.datetime(2025, 1, 11, tzinfo=dt.UTC)),
        ("eb2025-01-02", lambda t: t < dt.datetime(2025, 1, 2, tzinfo=dt.UTC)),
    ],
)
def test_last_updated_prefixes(world: World, query: str, keep: Callable[[dt.datetime], bool]) -> None:
    expected = _goals_of_cases_saved(world, keep)
    assert search_ids(world.client, f"/fhir/Goal?_lastUpdated={query}") == expected


def test_last_updated_range_is_two_parameters_anded(world: World) -> None:
    lo, hi = dt.datetime(2025, 1, 4, tzinfo=dt.UTC), dt.datetime(2025, 1, 9, tzinfo=dt.UTC)
    expected = _goals_of_cases_saved(world, lambda t: lo <= t < hi)
    assert expected
    assert search_ids(world.client, "/fhir/Goal?_lastUpdated=ge2025-01-04&_lastUpdated=lt2025-01-09") == expected


def test_last_updated_is_when_the_case_was_saved(listing: dict[str, list[dict[str, Any]]], world: World) -> None:
    saved = {c.id: saved_at(i) for i, c in enumerate(world.cases)}
    for resource in listing["EpisodeOfCare"]:
        assert dt.datetime.fromisoformat(resource["meta"]["lastUpdated"]) == saved[resource["id"]]


def test_parameters_combine(world: World) -> None:
    case = next(c for c in world.cases[4:] if any(g.status is GoalStatus.ACTIVE for g in c.goals))
    index = world.cases.index(case)
    active = {g.id for g in case.goals if g.status is GoalStatus.ACTIVE}
    base = f"/fhir/Goal?patient={case.patient.id}&status=active"
    assert search_ids(world.client, base) == active
    assert search_ids(world.client, f"{base}&_lastUpdated=ge{saved_at(index).date()}") == active
    assert search_ids(world.client, f"{base}&_lastUpdated=lt{saved_at(index).date()}") == set()
    assert search_ids(world.client, f"{base}&identifier={SYSTEM}|{sorted(active)[0]}") == {sorted(active)[0]}


# --- paging ------------------------------------------------------------------------------------------------


def test_paging_links_walk_every_match_once_with_a_consistent_total(
    world: World, listing: dict[str, list[dict[str, Any]]]
) -> None:
    completed = {r["id"] for r in listing["Communication"] if r["status"] == "completed"}
    assert len(completed) > 20
    found, pages = walk(world.client, "/fhir/Communication?_count=30&status=completed")
    assert len(pages) == -(-len(completed) // 30) > 2
    assert [r["id"] for r in found] == sorted(completed)
    assert [len(matches(p)) for p in pages[:-1]] == [30] * (len(pages) - 1)
    for page in pages:
        assert {k for k, _ in parse_qsl(urlsplit(link(page, "self") or "").query)} >= {"status", "_count"}
    # previous links walk back over the same pages
    back, current = [], pages[-1]
    while (previous := link(current, "previous")) is not None:
        current = get(world.client, previous)
        back.append([r["id"] for r in matches(current)])
    assert back == [[r["id"] for r in matches(p)] for p in reversed(pages[:-1])]
    assert link(pages[0], "first") == link(pages[0], "self")
    assert [r["id"] for r in matches(get(world.client, link(pages[0], "last") or ""))] == [
        r["id"] for r in matches(pages[-1])
    ]


def test_default_page_size_is_20_and_count_is_capped_at_200(world: World) -> None:
    first = get(world.client, "/fhir/Communication")
    assert len(matches(first)) == min(20, first["total"])
    capped = get(world.client, "/fhir/Communication?_count=100000")
    assert dict(parse_qsl(urlsplit(link(capped, "self") or "").query))["_count"] == "200"


def test_count_zero_gives_only_the_total(world: World) -> None:
    bundle = get(world.client, "/fhir/Goal?_count=0")
    assert bundle["total"] == sum(len(c.goals) for c in world.cases)
    assert matches(bundle) == []
    assert link(bundle, "next") is None


# --- versions ----------------------------------------------------------------------------------------------

_R5_ACCEPT = {**READER, "Accept": "application/fhir+json; fhirVersion=5.0"}


@pytest.mark.parametrize("rtype", TYPES)
@pytest.mark.parametrize("how", ["accept", "query"])
def test_r5_on_request_validates_under_the_r5_models(world: World, rtype: str, how: str) -> None:
    url, headers = (
        (f"/fhir/{rtype}?_count=50", _R5_ACCEPT)
        if how == "accept"
        else (f"/fhir/{rtype}?_count=50&_fhirVersion=5.0", READER)
    )
    found, pages = walk(world.client, url, headers)
    for bundle in pages:
        validate_bundle(bundle, "R5")
        if how == "query":
            assert all("_fhirVersion=5.0" in entry["url"] for entry in bundle["link"]), "paging stays in R5"
    assert {r["id"] for r in found} == set().union(*(domain_ids(c, rtype) for c in world.cases))
    response = world.client.get(f"/fhir/{rtype}/{found[0]['id']}", headers=_R5_ACCEPT)
    assert response.headers["content-type"] == "application/fhir+json; fhirVersion=5.0"
    assert response.json() == found[0]


@pytest.mark.parametrize("rtype", TYPES)
def test_r4_searchsets_validate_under_the_r4_models(world: World, rtype: str) -> None:
    lenient = {**READER, "Prefer": "handling=lenient"}
    for bundle in walk(world.client, f"/fhir/{rtype}?_count=50&foo=bar", lenient)[1]:  # with an outcome entry
        validate_bundle(bundle, "R4")


def test_r5_searches_use_r5_codes(world: World) -> None:
    """Encounter.status 'finished' (R4) is 'completed' in R5: the search follows the version asked for."""
    r4 = search_ids(world.client, "/fhir/Encounter?status=finished")
    assert r4
    assert search_ids(world.client, "/fhir/Encounter?status=completed", _R5_ACCEPT) == r4
    assert search_ids(world.client, "/fhir/Encounter?status=finished", _R5_ACCEPT) == set()


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        ("application/fhir+json", "4.0"),
        ("application/fhir+json; fhirVersion=4.0", "4.0"),
        ("application/json", "4.0"),
        ("*/*", "4.0"),
        ('application/fhir+json; fhirVersion="5.0"', "5.0"),
        ("application/fhir+xml, application/fhir+json; fhirVersion=5.0; q=0.5", "5.0"),
        ("application/fhir+json; fhirVersion=3.0, application/fhir+json; fhirVersion=5.0", "5.0"),
        ("application/fhir+json; fhirVersion=5.0; q=0.2, application/fhir+json; fhirVersion=4.0", "4.0"),
    ],
)
def test_accept_header_negotiation(world: World, accept: str, version: str) -> None:
    response = world.client.get("/fhir/metadata", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"application/fhir+json; fhirVersion={version}"
    assert response.json()["fhirVersion"] == {"4.0": "4.0.1", "5.0": "5.0.0"}[version]


@pytest.mark.parametrize(
    ("query", "version"),
    [
        ("_format=application/fhir+json", "4.0"),  # typed as is: the '+' arrives as a space
        ("_format=application/json+fhir", "4.0"),
        ("_format=application/fhir%2Bjson", "4.0"),
        ("_format=application/fhir+json;fhirVersion=5.0", "5.0"),
        ("_format=application/fhir+json;%20fhirVersion=5.0", "5.0"),
    ],
)
def test_format_as_typed_in_a_query_string(world: World, query: str, version: str) -> None:
    response = world.client.get(f"/fhir/Goal?{query}&_count=1", headers=READER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"application/fhir+json; fhirVersion={version}"


# --- metadata ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_capability_statement_validates_and_lists_what_is_served(world: World, version: str) -> None:
    headers = _R5_ACCEPT if version == "R5" else {}
    statement = get(world.client, "/fhir/metadata", headers)
    validate(statement, version)
    assert statement["kind"] == "instance"
    assert statement["fhirVersion"] == {"R4": "4.0.1", "R5": "5.0.0"}[version]
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == set(TYPES)
    for rtype, resource in resources.items():
        assert {i["code"] for i in resource["interaction"]} == {"read", "search-type"}
        names = {p["name"] for p in resource["searchParam"]}
        assert {"patient", "subject", "status", "identifier", "_lastUpdated", "_id"} <= names, rtype
    for rtype in ("CarePlan", "CareTeam", "Condition", "Goal", "ServiceRequest", "Communication"):
        assert "category" in {p["name"] for p in resources[rtype]["searchParam"]}


def test_metadata_needs_no_credentials(world: World) -> None:
    assert world.client.get("/fhir/metadata").status_code == 200


def test_every_declared_search_parameter_is_accepted_strictly(world: World) -> None:
    """What /metadata promises, a strict search takes: the statement and the searches share one table."""
    statement = get(world.client, "/fhir/metadata", {})
    sample = {"token": "x", "reference": "x", "date": "ge2000-01-01"}
    special = {"_sort": "-_lastUpdated", "_summary": "count", "_elements": "status", "_count": "3"}
    strict = {**READER, "Prefer": "handling=strict"}
    for resource in statement["rest"][0]["resource"]:
        for value in resource["searchInclude"]:
            response = world.client.get(f"/fhir/{resource['type']}?_include={value}", headers=strict)
            assert response.status_code == 200, (value, response.text)
        for value in resource["searchRevInclude"]:
            response = world.client.get(f"/fhir/{resource['type']}?_revinclude={value}", headers=strict)
            assert response.status_code == 200, (value, response.text)
        for param in resource["searchParam"]:
            if param["type"] == "special":
                response = world.client.get(
                    f"/fhir/{resource['type']}?{param['name']}={special[param['name']]}", headers=strict
                )
                assert response.status_code == 200, (resource["type"], param["name"], response.text)
                continue
            response = world.client.get(
                f"/fhir/{resource['type']}?{param['name']}={sample[param['type']]}", headers=strict
            )
            assert response.status_code == 200, (resource["type"], param["name"], response.text)


# --- unknown parameters ------------------------------------------------------------------------------------


def test_unknown_parameters_are_refused_by_default_as_hapi_does(world: World) -> None:
    response = world.client.get("/fhir/Goal?status=active&colour=blue", headers=READER)
    assert response.status_code == 400 and "colour" in response.json()["issue"][0]["diagnostics"]


def test_an_iterating_include_is_refused_as_unsupported_and_ignored_when_lenient(world: World) -> None:
    for name in ("_include:iterate", "_revinclude:iterate"):
        url = f"/fhir/CarePlan?{name}=CarePlan:goal"
        refused = world.client.get(url, headers=READER)
        assert refused.status_code == 400
        assert refused.json()["issue"][0]["diagnostics"].startswith(f"{name} is not supported"), refused.text
        lenient = get(world.client, url, {**READER, "Prefer": "handling=lenient"})
        assert [e["resource"]["resourceType"] for e in lenient["entry"] if e["search"]["mode"] == "include"] == []


def test_unknown_parameters_are_ignored_and_reported_when_lenient(world: World) -> None:
    lenient = {**READER, "Prefer": "handling=lenient"}
    bundle = get(world.client, "/fhir/Goal?status=active&flavour=date&colour=blue", lenient)
    assert {r["id"] for r in matches(bundle)} <= {g.id for c in world.cases for g in c.goals}
    assert bundle["total"] == len(search_ids(world.client, "/fhir/Goal?status=active"))
    outcomes = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1 and outcomes[0]["resourceType"] == "OperationOutcome"
    reported = " ".join(i["diagnostics"] for i in outcomes[0]["issue"])
    assert "colour" in reported and "flavour" in reported
    assert all(i["severity"] == "warning" for i in outcomes[0]["issue"])
    self_params = {k for k, _ in parse_qsl(urlsplit(link(bundle, "self") or "").query)}
    assert "colour" not in self_params and "status" in self_params


def test_handling_is_read_from_every_prefer_header_line(world: World) -> None:
    """HTTP lets a client send Prefer on several lines (HAPI's client adds one per preference): the
    handling on the second line was not seen, so a lenient search was refused as strict."""
    headers = [*READER.items(), ("Prefer", "return=representation"), ("Prefer", "handling=lenient")]
    response = world.client.get("/fhir/Goal?status=active&colour=blue", headers=headers)
    assert response.status_code == 200 and response.headers["preference-applied"] == "handling=lenient"
    assert response.json()["total"] == len(search_ids(world.client, "/fhir/Goal?status=active"))


def test_parameters_of_other_types_are_unknown_here(world: World) -> None:
    """Encounter has no category, EpisodeOfCare no lifecycle-status: lenient ignores, strict refuses."""
    for url in ("/fhir/Encounter?category=x", "/fhir/EpisodeOfCare?lifecycle-status=active"):
        bundle = get(world.client, url, {**READER, "Prefer": "handling=lenient"})
        assert any(e["search"]["mode"] == "outcome" for e in bundle["entry"])
        strict = world.client.get(url, headers={**READER, "Prefer": "handling=strict"})
        assert strict.status_code == 400


def test_strict_handling_refuses_unknown_parameters(world: World) -> None:
    strict = {**READER, "Prefer": "return=minimal, handling=strict"}
    response = world.client.get("/fhir/Goal?colour=blue", headers=strict)
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "colour" in outcome["issue"][0]["diagnostics"]
    validate(outcome, "R4")
    lenient = world.client.get("/fhir/Goal?colour=blue", headers={**READER, "Prefer": "handling=lenient"})
    assert lenient.status_code == 200
    assert lenient.headers["preference-applied"] == "handling=lenient"


def test_total_is_always_accurate_whichever_is_asked(world: World) -> None:
    every = sum(len(c.goals) for c in world.cases)
    for value in ("none", "estimate", "accurate", ""):
        assert get(world.client, f"/fhir/Goal?_total={value}&_count=1")["total"] == every, value


def test_empty_parameter_values_are_ignored(world: World) -> None:
    assert search_ids(world.client, "/fhir/Goal?status=&patient=") == {g.id for c in world.cases for g in c.goals}


# --- errors ------------------------------------------------------------------------------------------------


def _outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    validate(body, "R4")
    return body


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Goal?_count=-1",
        "/fhir/Goal?_count=ten",
        "/fhir/Goal?_count=5&_count=6",
        "/fhir/Goal?_offset=-3",
        "/fhir/Goal?_lastUpdated=yesterday",
        "/fhir/Goal?_lastUpdated=2025-13-01",
        "/fhir/Goal?_lastUpdated=ap2025-01-01",
        "/fhir/Goal?_lastUpdated=ge2025-01-01T25:00:00Z",
        "/fhir/Goal?status:not=active",
        "/fhir/Goal?patient:missing=true",
        "/fhir/Goal?identifier=a|b|c",
        "/fhir/Goal?patient=not/a/reference!",
        "/fhir/Goal?_fhirVersion=4.0&_fhirVersion=5.0",
        "/fhir/Goal?_total=all",
        "/fhir/Goal?_total=accurate&_total=none",
    ],
)
def test_bad_parameter_values_are_400_operation_outcomes(world: World, url: str) -> None:
    body = _outcome(world.client.get(url, headers=READER), 400)
    assert body["issue"][0]["code"] in ("invalid", "not-supported")


def test_unknown_type_and_id_are_404(world: World) -> None:
    assert _outcome(world.client.get("/fhir/Patient", headers=READER), 404)["issue"][0]["code"] == "not-supported"
    assert _outcome(world.client.get("/fhir/Patient/1", headers=READER), 404)
    assert _outcome(world.client.get("/fhir/Goal/no-such-goal", headers=READER), 404)["issue"][0]["code"] == "not-found"
    a_case = world.cases[0].id
    assert _outcome(world.client.get(f"/fhir/Goal/{a_case}", headers=READER), 404), "ids are per type"
    assert _outcome(world.client.get(f"/fhir/Goal/{world.cases[0].goals[0].id}/_history/1", headers=READER), 404)


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/fhir/metadata?_fhirVersion=3.0", {}),
        ("/fhir/Goal?_fhirVersion=4.3", READER),
        ("/fhir/Goal", {**READER, "Accept": "application/fhir+json; fhirVersion=3.0"}),
        ("/fhir/Goal", {**READER, "Accept": "application/fhir+xml"}),
        ("/fhir/Goal?_format=xml", READER),
        ("/fhir/Goal/x?_format=application/fhir+json;fhirVersion=6.0", READER),
    ],
)
def test_unsupported_versions_and_formats_are_406(world: World, url: str, headers: dict[str, str]) -> None:
    _outcome(world.client.get(url, headers=headers), 406)


def test_auth_failures_are_operation_outcomes(world: World) -> None:
    unauthenticated = world.client.get("/fhir/Goal")
    assert _outcome(unauthenticated, 401)["issue"][0]["code"] == "login"
    assert unauthenticated.headers["www-authenticate"] == 'Bearer realm="test"'
    forbidden = world.client.get("/fhir/Goal/x", headers={"X-Reader": "case-manager"})
    assert _outcome(forbidden, 403)["issue"][0]["code"] == "forbidden"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_405(world: World, method: str) -> None:
    for url in ("/fhir/Goal", f"/fhir/Goal/{world.cases[0].goals[0].id}", "/fhir/metadata"):
        response = world.client.request(method, url, headers=READER, json={"resourceType": "Goal"})
        _outcome(response, 405)
        assert response.headers["allow"] == "GET"


def test_unknown_paths_are_404_operation_outcomes(world: World) -> None:
    for url in ("/fhir/", "/fhir/Goal/a/b/c", "/fhir/$export"):
        _outcome(world.client.get(url, headers=READER), 404)
