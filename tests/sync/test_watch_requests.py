"""What the Encounter watch and the tracker ask the server, counted at a recording proxy.

As an integration engineer sees it in the server's access log: the first pull round reads every open
case's whole Encounter history (the seeding); the second must ask only for what changed since — not
read every history again because the seeding left no watermark. And a tracker run over many cases
reads their patients' records in a few searches, not one request per case, still following a record
the hospital merged into another.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import ProgrammeType, ReferralKind
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import run_pull
from fhir_cm.store import Store, get_case, get_ledger, get_watermark
from fhir_cm.sync import push_cases, track_transitions
from fhir_cm.sync._watch import BATCH, WATCH_MARK
from tests.sync.faulty_proxy import FaultyProxy, faulty_proxy
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import encounter, enrol

pytestmark = pytest.mark.server


@asynccontextmanager
async def _recorded(
    fhir_server: str, settings: Settings, edit: Callable[[str, bytes], bytes] | None = None
) -> AsyncIterator[tuple[AsyncFhirClient, Settings, FaultyProxy]]:
    """A client and settings that reach the server through a proxy listing every request (no faults)."""
    # ``rewrite``: a pull pages through every Goal and CareTeam on sekmet (it cannot search them by
    # identifier), and sekmet's next links name its own address, not the proxy's.
    root = fhir_server.removesuffix("/fhir")
    async with faulty_proxy(root, rate=0.0, rewrite=True, edit=edit) as (root, proxy):
        async with AsyncFhirClient(f"{root}/fhir", enforce_capabilities=False) as client:
            yield client, settings.model_copy(update={"fhir_base": f"{root}/fhir"}), proxy


def _requests(proxy: FaultyProxy, prefix: str) -> list[str]:
    return [line for line in proxy.seen if line.startswith(prefix)]


async def _merge(client: AsyncFhirClient, patient: str) -> str:
    """Merge ``patient``'s record into a new one, as the hospital's MPI does; the survivor's id."""
    survivor = f"{patient}-2"
    await client.update({"resourceType": "Patient", "id": survivor, "active": True}, versioned=False)
    link = [{"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}]
    await client.update({"resourceType": "Patient", "id": patient, "active": False, "link": link}, versioned=False)
    return survivor


async def test_the_round_after_the_seeding_asks_only_for_what_changed_and_still_sees_a_discharge(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    async with _recorded(fhir_server, settings) as (client, proxied, proxy):
        tags = [uuid.uuid4().hex[:10] for _ in range(3)]
        cases = [await enrol(store, client, proxied, tag) for tag in tags]
        hospital = f"hosp-{tags[0]}"
        await put_organisations(client, hospital)
        await client.create(encounter(cases[0].patient.id, "IMP", "2024-03-01", "2024-03-04", hospital))

        first = await run_pull(store, proxied)
        assert first.watch is not None and sorted(first.watch.seeded) == sorted(c.id for c in cases)
        assert first.transitions.failed == {} and first.transitions.stays_added == 1

        proxy.seen.clear()
        second = await run_pull(store, proxied)  # nothing changed on the server since
        searches = _requests(proxy, "GET /fhir/Encounter?patient=")  # the watch's (the pull's name ours)
        assert second.watch is not None and second.watch.seeded == [] and second.watch.touched == []
        assert searches and all("_lastUpdated=gt" in line for line in searches), searches

        # The hospital records a discharge for the second case's patient: the next round sees it.
        await client.create(
            encounter(cases[1].patient.id, "IMP", "2024-05-01", "2024-05-06", hospital, disposition="home")
        )
        third = await run_pull(store, proxied)
        assert third.watch is not None and third.watch.touched == [cases[1].id]
        with store.session(read_only=True) as s:
            tracked = get_case(s, cases[1].id)
        assert tracked is not None
        assert [r.kind for r in tracked.referrals] == [ReferralKind.FOLLOW_UP]


async def test_a_tracker_run_reads_its_patients_in_batches_and_follows_only_the_merged_one(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    async with _recorded(fhir_server, settings) as (client, proxied, proxy):
        tags = [uuid.uuid4().hex[:10] for _ in range(5)]
        cases = [await enrol(store, client, proxied, tag) for tag in tags]
        merged = cases[2].patient.id
        survivor = await _merge(client, merged)

        proxy.seen.clear()
        report = await track_transitions(store, client, proxied, case_ids=[c.id for c in cases])

    assert report.failed == {} and report.cases == len(cases)
    assert report.patients_merged == [cases[2].id]
    patient_requests = _requests(proxy, "GET /fhir/Patient")
    # One search per chunk of patients, and one read: the survivor the merged record's link leads to.
    assert len(patient_requests) <= math.ceil(len(cases) / BATCH) + 1, patient_requests
    assert [line for line in patient_requests if "?" not in line] == [f"GET /fhir/Patient/{survivor}"]
    assert _requests(proxy, "POST /fhir") == []
    with store.session(read_only=True) as s:
        entry = get_ledger(s, client.base_url, "Patient", merged)
    assert entry is not None and entry.server_id == survivor


async def test_a_round_asks_for_a_merged_patients_record_once_the_watch_and_the_tracker_sharing_it(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    """The watch's search for merged records (``Patient?_id=…``, changed since the watermark) finds the
    retired record and hands the case to the tracker, which used to ask for the same record again in
    its own ``Patient?_id=`` search. The round asks once; the tracker follows the link all the same."""
    async with _recorded(fhir_server, settings) as (client, proxied, proxy):
        tags = [uuid.uuid4().hex[:10] for _ in range(3)]
        cases = [await enrol(store, client, proxied, tag) for tag in tags]
        first = await run_pull(store, proxied)  # the seeding
        assert first.watch is not None and first.transitions.failed == {}

        merged = cases[1].patient.id
        survivor = await _merge(client, merged)
        moved = cases[0].patient.id  # a new address, nothing else: its case is not tracked
        await client.update(
            {"resourceType": "Patient", "id": moved, "active": True, "gender": "other"}, versioned=False
        )

        proxy.seen.clear()
        second = await run_pull(store, proxied)

    assert second.watch is not None and second.watch.touched == [cases[1].id] and second.watch.merged == 1
    assert second.transitions.failed == {} and second.transitions.patients_merged == [cases[1].id]
    searches = [line for line in _requests(proxy, "GET /fhir/Patient?_id=") if merged in line]
    assert len(searches) == 1, searches
    # Only the records of patients the round tracks are handed on (the merged one and the survivor its
    # link led to): the other changed one is not held.
    assert sorted(second.watch.patients_read()) == sorted([merged, survivor])
    assert _requests(proxy, f"GET /fhir/Patient/{survivor}") == [f"GET /fhir/Patient/{survivor}"]
    with store.session(read_only=True) as s:
        entry = get_ledger(s, client.base_url, "Patient", merged)
    assert entry is not None and entry.server_id == survivor


def _no_bundle_time(target: str, body: bytes) -> bytes:
    """A server whose search answers carry no time of their own (no ``Bundle.meta``), only the
    HTTP ``Date`` every answer has."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if not isinstance(answer, dict) or answer.get("resourceType") != "Bundle":
        return body
    answer.pop("meta", None)
    return json.dumps(answer).encode()


async def test_the_seeding_takes_its_watermark_from_the_answers_date_where_bundles_carry_no_time(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    """The seeding's watermark is the server's time of the tracker's first search. A server that puts
    no ``meta.lastUpdated`` on its Bundles still dates its answer (``Date``): the round after the
    seeding asks only for what changed since, rather than every history again."""
    async with _recorded(fhir_server, settings, edit=_no_bundle_time) as (client, proxied, proxy):
        cases = [await enrol(store, client, proxied, uuid.uuid4().hex[:10]) for _ in range(2)]
        first = await run_pull(store, proxied)
        assert first.watch is not None and sorted(first.watch.seeded) == sorted(c.id for c in cases)
        assert first.transitions.failed == {} and first.transitions.read_from is not None
        with store.session(read_only=True) as s:
            assert get_watermark(s, client.base_url, WATCH_MARK) is not None

        proxy.seen.clear()
        second = await run_pull(store, proxied)
    searches = _requests(proxy, "GET /fhir/Encounter?patient=")
    assert second.watch is not None and second.watch.seeded == [] and second.watch.touched == []
    assert searches and all("_lastUpdated=gt" in line for line in searches), searches


async def test_a_tracker_run_reads_the_encounters_of_a_patient_with_two_cases_once(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    """A patient in two programmes has two open cases, both tracked in one run: the patient's
    Encounters are asked for once, and both cases get the hospital stay."""
    async with _recorded(fhir_server, settings) as (client, proxied, proxy):
        tag = uuid.uuid4().hex[:10]
        first = await enrol(store, client, proxied, tag)
        second = first.model_copy(update={"id": f"{first.id}-rehab", "programme": ProgrammeType.REHABILITATION})
        assert (await push_cases(store, client, proxied, [second])).ok
        other = await enrol(store, client, proxied, uuid.uuid4().hex[:10])
        hospital = f"hosp-{tag}"
        await put_organisations(client, hospital)
        await client.create(
            encounter(first.patient.id, "IMP", "2024-03-01", "2024-03-04", hospital, disposition="home")
        )

        proxy.seen.clear()
        report = await track_transitions(store, client, proxied, case_ids=[first.id, second.id, other.id])

    assert report.failed == {} and report.cases == 3 and report.stays_added == 2
    searches = _requests(proxy, f"GET /fhir/Encounter?patient=Patient%2F{first.patient.id}")
    assert len(searches) == 1, proxy.seen
    assert len(_requests(proxy, f"GET /fhir/Encounter?patient=Patient%2F{other.patient.id}")) == 1
    with store.session(read_only=True) as s:
        for case_id in (first.id, second.id):
            tracked = get_case(s, case_id)
            assert tracked is not None and [r.kind for r in tracked.referrals] == [ReferralKind.FOLLOW_UP]
