"""The façade's result parameters as clients use them: _include/_revinclude, _summary=count, _sort,
_elements, POST _search, _lastUpdated ranges and the US Core search combinations.

Expectations come from the domain (which goals a case's plan has, which tasks fulfil which referral)
or from the unfiltered listing, never from the façade's own index.
"""

# ruff: noqa: F811
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

# The module-scoped ``world`` fixture of the façade tests, shared (its parameters shadow the import).
from tests.mapping.fhir_check import validate, validate_bundle

from .test_fhir_facade import TYPES, READER, World, get, matches, saved_at, search_ids, walk, world  # noqa: F401

STRICT = {**READER, "Prefer": "handling=strict"}
DAY = dt.timedelta(days=1)


def included(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "include"]


def test_include_brings_the_goals_and_team_of_each_plan_on_the_page(world: World) -> None:
    for case in world.cases[:5]:
        bundle = get(
            world.client,
            f"/fhir/CarePlan?patient={case.patient.id}&_include=CarePlan:goal&_include=CarePlan:care-team",
        )
        plans = matches(bundle)
        expected = {("Goal", g.id) for c in world.cases if c.patient.id == case.patient.id for g in c.goals}
        expected |= {
            ("CareTeam", f"{c.id}-careteam") for c in world.cases if c.patient.id == case.patient.id and c.team
        }
        assert plans and {(r["resourceType"], r["id"]) for r in included(bundle)} == expected
        for entry in bundle["entry"]:
            if entry["search"]["mode"] == "include":
                assert entry["fullUrl"].endswith(f"/fhir/{entry['resource']['resourceType']}/{entry['resource']['id']}")


def test_revinclude_brings_the_tasks_that_fulfil_each_referral(world: World) -> None:
    case = next(c for c in world.cases if c.referrals)
    bundle = get(world.client, f"/fhir/ServiceRequest?patient={case.patient.id}&_revinclude=Task:focus&_count=200")
    referrals = {r["id"] for r in matches(bundle)}
    tasks = {r["id"] for r in included(bundle)}
    assert referrals and tasks == {f"{rid}-task" for rid in referrals}
    assert all(r["resourceType"] == "Task" for r in included(bundle))


def test_revinclude_provenance_is_accepted_and_says_where_provenance_lives(world: World) -> None:
    bundle = get(world.client, "/fhir/CarePlan?_revinclude=Provenance:target", STRICT)
    assert included(bundle) == []
    outcome = next(e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome")
    assert "holds no Provenance" in outcome["issue"][0]["diagnostics"]


def test_an_include_the_facade_cannot_serve_is_refused(world: World) -> None:
    for url in (
        "/fhir/CarePlan?_include=CarePlan:patient",
        "/fhir/Goal?_include=*",
        "/fhir/Goal?_revinclude=Task:focus",
    ):
        response = world.client.get(url, headers=READER)
        assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome", url


def test_an_include_names_the_type_of_its_targets_or_none(world: World) -> None:
    case = next(c for c in world.cases if c.goals and c.referrals)
    plans = f"/fhir/CarePlan?patient={case.patient.id}"
    with_type = get(world.client, f"{plans}&_include=CarePlan:goal:Goal", STRICT)
    assert {(r["resourceType"], r["id"]) for r in included(with_type)} >= {("Goal", g.id) for g in case.goals}
    referrals = f"/fhir/ServiceRequest?patient={case.patient.id}"
    tasks = get(world.client, f"{referrals}&_revinclude=Task:focus:ServiceRequest", STRICT)
    assert {r["id"] for r in included(tasks)} >= {f"{r.id}-task" for r in case.referrals}
    for url in (f"{plans}&_include=CarePlan:goal:Patient", f"{referrals}&_revinclude=Task:focus:Goal"):
        response = world.client.get(url, headers=STRICT)
        assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome", url


def test_summary_count_gives_the_total_only(world: World) -> None:
    every = search_ids(world.client, "/fhir/Goal?status=active")
    bundle = get(world.client, "/fhir/Goal?status=active&_summary=count")
    assert bundle["total"] == len(every) and "entry" not in bundle
    assert world.client.get("/fhir/Goal?_summary=short", headers=READER).status_code == 400


def test_sort_orders_before_paging(world: World) -> None:
    newest_first = [r["id"] for r in walk(world.client, "/fhir/EpisodeOfCare?_sort=-_lastUpdated,_id&_count=4")[0]]
    by_case = {c.id: saved_at(i) for i, c in enumerate(world.cases)}
    assert newest_first == sorted(by_case, key=lambda cid: (-by_case[cid].timestamp(), cid))
    by_id = [r["id"] for r in walk(world.client, "/fhir/Goal?_sort=-_id&_count=7")[0]]
    assert by_id == sorted(by_id, reverse=True) and len(by_id) == sum(len(c.goals) for c in world.cases)
    statuses = [r["lifecycleStatus"] for r in walk(world.client, "/fhir/Goal?_sort=status&_count=50")[0]]
    assert statuses == sorted(statuses)
    due = [r["target"][0]["dueDate"] for r in walk(world.client, "/fhir/Goal?_sort=-target-date&_count=50")[0]]
    assert due == sorted(due, reverse=True)
    assert world.client.get("/fhir/Goal?_sort=colour", headers=READER).status_code == 400


def test_elements_returns_only_what_was_asked_tagged_subsetted(world: World) -> None:
    bundle = get(world.client, "/fhir/Goal?_elements=lifecycleStatus,subject&_count=5")
    for resource in matches(bundle):
        # description: mandatory, kept whether asked or not
        assert set(resource) <= {"resourceType", "id", "meta", "lifecycleStatus", "subject", "description"}
        assert {"lifecycleStatus", "subject"} <= set(resource)
        assert any(t["code"] == "SUBSETTED" for t in resource["meta"]["tag"])


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_elements_names_a_choice_element_by_its_name(world: World, version: str) -> None:
    """FHIR's _elements takes element names: ServiceRequest.occurrence[x] is ``occurrence``, served as
    ``occurrenceDateTime``. Asked so, the referral came back without its date, as if it had none."""
    whole = {r["id"]: r for r in matches(get(world.client, f"/fhir/ServiceRequest?_count=200&_fhirVersion={version}"))}
    dated = {rid for rid, r in whole.items() if "occurrenceDateTime" in r}
    assert dated
    asked = matches(get(world.client, f"/fhir/ServiceRequest?_elements=occurrence&_count=200&_fhirVersion={version}"))
    assert {r["id"] for r in asked if r.get("occurrenceDateTime") == whole[r["id"]].get("occurrenceDateTime")} == dated
    (goal,) = matches(get(world.client, f"/fhir/Goal?_elements=start&_count=1&_fhirVersion={version}"))
    full = get(world.client, f"/fhir/Goal/{goal['id']}?_fhirVersion={version}")
    started = {k: v for k, v in full.items() if k.startswith("start")}
    assert started and {k: v for k, v in goal.items() if k.startswith("start")} == started
    assert get(world.client, f"/fhir/Goal/{goal['id']}?_elements=start&_fhirVersion={version}") == goal


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_elements_keeps_the_mandatory_elements_so_subsets_stay_valid(world: World, version: str) -> None:
    """FHIR: servers SHOULD return mandatory elements whether asked or not (a Goal without description is none)."""
    for rtype in TYPES:
        bundle = get(world.client, f"/fhir/{rtype}?_elements=identifier&_count=5&_fhirVersion={version}")
        assert matches(bundle), rtype
        validate_bundle(bundle, version)
    goal = matches(get(world.client, "/fhir/Goal?_elements=identifier&_count=1"))[0]
    assert set(goal) == {"resourceType", "id", "meta", "identifier", "lifecycleStatus", "description", "subject"}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_read_takes_elements_and_summary_as_a_search_does(world: World, version: str) -> None:
    """FHIR defines _elements and _summary for a read too: a client asking one resource for two elements got
    the whole of it, untagged, and may have taken it as all there is (or sent back more than it meant to)."""
    for rtype in TYPES:
        (found,) = matches(get(world.client, f"/fhir/{rtype}?_elements=identifier&_count=1&_fhirVersion={version}"))
        read = get(world.client, f"/fhir/{rtype}/{found['id']}?_elements=identifier&_fhirVersion={version}")
        assert read == found, rtype  # the search's subset: mandatory elements kept, tagged SUBSETTED
        assert any(t["code"] == "SUBSETTED" for t in read["meta"]["tag"]), rtype
        validate(read, version)
    goal = get(world.client, f"/fhir/Goal/{world.cases[0].goals[0].id}")
    assert "target" in goal and "SUBSETTED" not in str(goal.get("meta"))
    assert get(world.client, f"/fhir/Goal/{goal['id']}?_summary=false") == goal
    subset = get(world.client, f"/fhir/Goal/{goal['id']}?_elements=lifecycleStatus,subject")
    assert set(subset) == {"resourceType", "id", "meta", "lifecycleStatus", "subject", "description"}
    for bad in ("_summary=count", "_summary=short", "_elements=target.dueDate"):
        refused = world.client.get(f"/fhir/Goal/{goal['id']}?{bad}", headers=READER)
        assert refused.status_code == 400 and refused.json()["resourceType"] == "OperationOutcome", bad


def test_post_search_answers_as_get(world: World) -> None:
    case = world.cases[0]
    form = f"patient={case.patient.id}&_count=3"
    posted = world.client.post(
        "/fhir/Goal/_search", content=form, headers={**READER, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert posted.status_code == 200, posted.text
    got = get(world.client, f"/fhir/Goal?patient={case.patient.id}&_count=3")
    assert [r["id"] for r in matches(posted.json())] == [r["id"] for r in matches(got)]
    assert posted.json()["total"] == got["total"]
    wrong = world.client.post("/fhir/Goal/_search", json={"patient": "x"}, headers=READER)
    assert wrong.status_code == 415 and wrong.json()["resourceType"] == "OperationOutcome"


def test_post_search_takes_the_version_and_format_from_its_body_too(world: World) -> None:
    """A form body's parameters are the search's, _fhirVersion and _format among them: the body's
    _fhirVersion=5.0 was answered in R4 (its next link in R5), and _format=xml answered in JSON."""
    form = {**READER, "Content-Type": "application/x-www-form-urlencoded"}
    posted = world.client.post("/fhir/Encounter/_search", content="_fhirVersion=5.0&_count=2", headers=form)
    assert posted.status_code == 200 and posted.headers["content-type"].endswith("fhirVersion=5.0")
    as_get = get(world.client, "/fhir/Encounter?_fhirVersion=5.0&_count=2")
    assert matches(posted.json()) == matches(as_get) and "actualPeriod" in str(matches(as_get))
    validate_bundle(posted.json(), "R5")
    xml = world.client.post("/fhir/Encounter/_search", content="_format=xml", headers=form)
    assert xml.status_code == 406 and xml.json()["resourceType"] == "OperationOutcome"
    twice = world.client.post("/fhir/Encounter/_search?_fhirVersion=4.0", content="_fhirVersion=5.0", headers=form)
    assert twice.status_code == 400


def test_last_updated_ranges_select_by_both_ends(world: World) -> None:
    lo, hi = saved_at(3).date().isoformat(), saved_at(6).date().isoformat()
    found = search_ids(world.client, f"/fhir/EpisodeOfCare?_lastUpdated=ge{lo}&_lastUpdated=lt{hi}")
    assert found == {c.id for i, c in enumerate(world.cases) if 3 <= i < 6}


@pytest.mark.parametrize(
    ("prefix", "keep"),
    [
        # A stay is its days, first to last: a time within one of them is neither before nor after it.
        ("eq", lambda start, end, lo, hi: lo <= start and end <= hi),
        ("ne", lambda start, end, lo, hi: not (lo <= start and end <= hi)),
        ("gt", lambda start, end, lo, hi: end > hi),
        ("ge", lambda start, end, lo, hi: end > hi or (lo <= start and end <= hi)),
        ("lt", lambda start, end, lo, hi: start < lo),
        ("le", lambda start, end, lo, hi: start < lo or (lo <= start and end <= hi)),
        ("sa", lambda start, end, lo, hi: start >= hi),
        ("eb", lambda start, end, lo, hi: end <= lo),
    ],
)
def test_a_day_compared_with_a_time_is_the_whole_day(world: World, prefix: str, keep: Any) -> None:
    """FHIR compares the ranges of both values: a stay of the single day 2024-06-27 lies within
    ``ge2024-06-27T10:00Z`` (its day runs past 10:00) and not within ``eq2024-06-27T00:00:00Z``."""
    stays = [s for c in world.cases for s in c.stays]
    day = next(s.start for s in stays if s.end == s.start)

    def days(stay: Any) -> tuple[dt.datetime, dt.datetime]:
        first = dt.datetime.combine(stay.start, dt.time(), tzinfo=dt.UTC)
        last = dt.datetime.max.replace(tzinfo=dt.UTC) if stay.end is None else first + (stay.end - stay.start) + DAY
        return first, last

    lo = dt.datetime.combine(day, dt.time(10), tzinfo=dt.UTC)
    for text, hi in (
        (f"{day}T10:00:00Z", lo + dt.timedelta(seconds=1)),
        (f"{day}T10:00Z", lo + dt.timedelta(minutes=1)),
    ):
        expected = {s.id for s in stays if keep(*days(s), lo, hi)}
        assert search_ids(world.client, f"/fhir/Encounter?date={prefix}{text}", STRICT) == expected, text
    one_day = next(s for s in stays if s.end == s.start == day)
    at_midnight = search_ids(world.client, f"/fhir/Encounter?date={prefix}{day}T00:00:00Z", STRICT)
    assert (one_day.id in at_midnight) == (prefix in ("ne", "gt", "ge")), "a day is more than its first second"


def test_the_us_core_search_combinations_and_each_part(world: World) -> None:
    """Each combination answers exactly the intersection of its parts (and is declared, so strict takes it)."""
    case = next(c for c in world.cases if c.referrals and c.goals and c.stays)
    p = f"patient={case.patient.id}"
    referral = case.referrals[0]
    served = get(world.client, f"/fhir/ServiceRequest/{referral.id}")
    category, code = served["category"][0]["coding"][0]["code"], served["code"]["coding"][0]["code"]
    combos = [
        ("CarePlan", [p, "category=assess-plan"]),
        ("CarePlan", [p, "category=assess-plan", "status=active"]),
        ("CarePlan", [p, "category=assess-plan", "date=ge2000-01-01"]),
        ("CareTeam", [p, "status=active"]),
        ("Goal", [p, "lifecycle-status=active"]),
        ("Goal", [p, "target-date=ge2000-01-01"]),
        ("ServiceRequest", [f"_id={referral.id}"]),
        ("ServiceRequest", [p, f"category={category}"]),
        ("ServiceRequest", [p, f"code={code}"]),
        ("ServiceRequest", [p, f"category={category}", "authored=ge2000-01-01"]),
        ("ServiceRequest", [p, "authored=ge2000-01-01"]),
        ("Encounter", [p, "date=ge2000-01-01"]),
        ("Encounter", [f"_id={case.stays[0].id}"]),
    ]
    for rtype, parts in combos:
        together = search_ids(world.client, f"/fhir/{rtype}?{'&'.join(parts)}", STRICT)
        each = [search_ids(world.client, f"/fhir/{rtype}?{part}", STRICT) for part in parts]
        assert together == set.intersection(*each), (rtype, parts)
    assert search_ids(world.client, f"/fhir/Encounter?{p}&date=ge2000-01-01", STRICT) == {
        s.id for c in world.cases if c.patient.id == case.patient.id for s in c.stays
    }
    assert search_ids(world.client, f"/fhir/ServiceRequest?_id={referral.id}", STRICT) == {referral.id}
