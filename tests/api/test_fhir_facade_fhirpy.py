"""A real FHIR client library (fhirpy) reading the façade of a real ``fhir-cm serve`` over HTTP:
paging through a ``_revinclude`` search, counting with ``_summary=count`` and fhirpy's own count,
fetching summaries with ``_summary=true``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fhirpy import SyncFHIRClient

from fhir_cm.domain import Case
from fhir_cm.store import ApiRole, create_api_key, open_store, save_case
from fhir_cm.synthetic import generate_cases
from tests.api_process import ApiProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SyncFHIRClient, list[Case]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fhirpy') / 'store.db'}"
    cases = list(generate_cases(12, seed=21))
    with open_store(url) as store, store.session() as s:
        for case in cases:
            save_case(s, case)
        _, key = create_api_key(s, name="fhirpy", role=ApiRole.SERVICE)
    api = ApiProcess(url)
    api.start()
    try:
        yield SyncFHIRClient(f"{api.base}/fhir", authorization=f"Bearer {key}"), cases
    finally:
        api.stop()


def test_fhirpy_pages_through_a_revinclude_search(served: tuple[SyncFHIRClient, list[Case]]) -> None:
    client, cases = served
    search = client.resources("ServiceRequest").revinclude("Task", "focus").limit(3)
    # fhirpy follows the next links (which keep _revinclude) to the end, and yields the matches.
    referrals = [r.id for r in search.fetch_all()]
    assert sorted(referrals) == sorted(ref.id for c in cases for ref in c.referrals)
    # Each page carries the Tasks that fulfil its referrals.
    page = search.fetch_raw()
    on_page = {e.resource.id for e in page.entry if e.search.mode == "match"}
    included = {e.resource.id for e in page.entry if e.search.mode == "include"}
    assert len(on_page) == 3 and included == {f"{rid}-task" for rid in on_page}


def test_fhirpy_counts_with_summary_count_and_its_own_count(served: tuple[SyncFHIRClient, list[Case]]) -> None:
    client, cases = served
    goals = sum(len(c.goals) for c in cases)
    bundle = client.resources("Goal").search(_summary="count").fetch_raw()
    assert bundle["total"] == goals and not bundle.get("entry")
    assert client.resources("Goal").count() == goals
    active = client.resources("Goal").search(status="active")
    assert active.count() == sum(1 for c in cases for g in c.goals if g.status.value == "active")


def test_fhirpy_sorts_and_subsets(served: tuple[SyncFHIRClient, list[Case]]) -> None:
    client, cases = served
    ids = [r.id for r in client.resources("Goal").sort("-_id").elements("lifecycleStatus").limit(5).fetch_all()]
    assert ids == sorted((g.id for c in cases for g in c.goals), reverse=True)


def test_fhirpy_fetches_summaries(served: tuple[SyncFHIRClient, list[Case]]) -> None:
    """fhirpy sends _summary=true as any other parameter; it was a 400 (an exception in the client)."""
    client, cases = served
    goals = client.resources("Goal").search(_summary="true").limit(4).fetch_all()
    assert sorted(g.id for g in goals) == sorted(g.id for c in cases for g in c.goals)
    for goal in goals:
        assert goal.get("target") is None and goal["lifecycleStatus"] and goal["description"]
        assert any(t["code"] == "SUBSETTED" for t in goal["meta"]["tag"])
    one = client.reference("Goal", goals[0].id).to_resource()
    assert one.get("target") is not None, "a read without _summary is the whole resource"


def test_fhirpy_finds_a_patient_at_the_facades_base_and_none_at_another(
    served: tuple[SyncFHIRClient, list[Case]],
) -> None:
    """An absolute reference is the local patient only at the façade's own base."""
    client, cases = served
    pid, goals = cases[0].patient.id, sorted(g.id for g in cases[0].goals)
    here = client.resources("Goal").search(subject=f"{client.url}/Patient/{pid}").fetch_all()
    assert sorted(g.id for g in here) == goals
    assert client.resources("Goal").search(subject=f"https://other.example/fhir/Patient/{pid}").fetch_all() == []


def test_fhirpy_searches_referrals_stays_and_teams_by_who_and_what(served: tuple[SyncFHIRClient, list[Case]]) -> None:
    """The case-management searches as a client library sends them: referrals by performer and
    requester, stays by provider and discharge disposition, teams by a member's role."""
    client, cases = served
    kinds = {"practitioner": "Practitioner", "organisation": "Organization"}
    referral = next(r for c in cases for r in c.referrals if r.target is not None and not r.target.outside)
    assert referral.target is not None
    target = f"{kinds[referral.target.kind]}/{referral.target.id}"
    found = client.resources("ServiceRequest").search(performer=target).fetch_all()
    assert sorted(r.id for r in found) == sorted(
        r.id for c in cases for r in c.referrals if r.target is not None and r.target.id == referral.target.id
    )
    case = next(
        c for c in cases if c.referrals and c.case_manager is not None and not any(r.requester for r in c.referrals)
    )
    assert case.case_manager is not None
    mine = client.resources("ServiceRequest").search(
        patient=case.patient.id, requester=f"Practitioner/{case.case_manager.id}"
    )
    assert sorted(r.id for r in mine.fetch_all()) == sorted(r.id for r in case.referrals)
    stay = next(s for c in cases for s in c.stays if s.provider is not None and s.discharge_disposition is not None)
    assert stay.provider is not None and stay.discharge_disposition is not None
    stays = client.resources("Encounter").search(
        **{
            "service-provider": f"Organization/{stay.provider.id}",
            "discharge-disposition": stay.discharge_disposition.value,
        }
    )
    assert sorted(s.id for s in stays.fetch_all()) == sorted(
        s.id
        for c in cases
        for s in c.stays
        if s.provider is not None
        and s.provider.id == stay.provider.id
        and s.discharge_disposition == stay.discharge_disposition
    )
    teams = client.resources("CareTeam").search(role="https://fhir-cm.org/fhir/CodeSystem/team-role|case-manager")
    assert sorted(t.id for t in teams.fetch_all()) == sorted(
        f"{c.id}-careteam" for c in cases if any(m.role.value == "case-manager" for m in c.team)
    )


def test_fhirpy_finds_who_was_in_on_a_day_by_a_date_range(served: tuple[SyncFHIRClient, list[Case]]) -> None:
    """``date__ge``/``date__le`` (fhirpy's prefixes) on a day inside a stay find that stay: it is dated by
    every day it lasted, not its first only; each stay found was in on that day."""
    client, cases = served
    stay = next(s for c in cases for s in c.stays if s.end is not None and (s.end - s.start).days >= 2)
    assert stay.end is not None
    day = (stay.start + (stay.end - stay.start) / 2).isoformat()
    found = client.resources("Encounter").search(date__ge=day, date__le=day).fetch_all()
    assert stay.id in {e.id for e in found}
    for encounter in found:
        period = encounter["period"]
        assert period["start"] <= day and period.get("end", day) >= day, encounter.id
