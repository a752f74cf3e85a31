"""The Encounter watch's own rules, on a server faked with respx: batching and its fallback, the
watermark and its overlap, versions already read, and which cases a change touches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from fhir_cm.domain import Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_ledger, get_watermark, mark_watched, open_store, put_ledger, save_case, LedgerEntry
from fhir_cm.sync import changed_encounter_patients, settle_watch
from fhir_cm.sync._watch import OVERLAP, WATCH_MARK, merges_first

BASE = "http://ehr.example/fhir"


def encounter(eid: str, patient: str, updated: str, version: str = "1") -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "meta": {"versionId": version, "lastUpdated": updated},
        "subject": {"reference": f"Patient/{patient}"},
    }


class Ehr:
    """Encounters by patient; refuses comma-joined patients when ``joins`` is False (400 OperationOutcome)."""

    def __init__(self, encounters: list[dict[str, Any]], *, joins: bool = True) -> None:
        self.encounters, self.joins = encounters, joins
        self.queries: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        self.queries.append(query)
        patients = [p.removeprefix("Patient/") for p in query["patient"][0].split(",")]
        if len(patients) > 1 and not self.joins:
            return httpx.Response(
                400,
                json={
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "invalid", "diagnostics": "patient: one reference only"}],
                },
            )
        since = query.get("_lastUpdated", [None])[0]
        found = [
            e
            for e in self.encounters
            if e["subject"]["reference"].removeprefix("Patient/") in patients
            and (since is None or e["meta"]["lastUpdated"] > since.removeprefix("gt"))
        ]
        return httpx.Response(
            200,
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": e, "search": {"mode": "match"}} for e in found],
            },
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'watch.db'}") as opened:
        with opened.session() as s:
            for n in range(3):
                save_case(
                    s,
                    Case(
                        id=f"case-{n}",
                        programme="health-care",
                        period=Period(start=dt.date(2024, 1, 1)),
                        patient=Party(kind="patient", id=f"pat-{n}"),
                    ),
                    enqueue=False,
                )
            save_case(
                s,
                Case(
                    id="closed",
                    programme="health-care",
                    status="closed",
                    period=Period(start=dt.date(2023, 1, 1), end=dt.date(2023, 6, 1)),
                    patient=Party(kind="patient", id="pat-closed"),
                ),
                enqueue=False,
            )
            mark_watched(s, BASE, ["case-0", "case-1", "case-2"])
        yield opened


async def watch(store: Store, ehr: Ehr, **kwargs: Any) -> Any:
    with respx.mock(base_url=BASE) as mock:
        mock.get("/Encounter").mock(side_effect=ehr)
        mock.get("/Patient").respond(json={"resourceType": "Bundle", "type": "searchset"})  # no record merged
        mock.get("/metadata").respond(json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            return await changed_encounter_patients(store, client, **kwargs)


async def test_one_batched_search_finds_the_cases_whose_patients_have_changed_encounters(store: Store) -> None:
    ehr = Ehr([encounter("e1", "pat-1", "2024-05-01T10:00:00Z"), encounter("e9", "pat-closed", "2024-05-02T00:00:00Z")])
    report = await watch(store, ehr)
    assert (report.batched, report.searches, report.touched) == (True, 1, ["case-1"])
    assert ehr.queries[0]["patient"] == ["Patient/pat-0,Patient/pat-1,Patient/pat-2"]  # open cases only
    assert report.watermark == "2024-05-01T10:00:00Z"


async def test_a_server_refusing_joined_patients_gets_one_search_per_patient(store: Store) -> None:
    ehr = Ehr([encounter("e1", "pat-2", "2024-05-01T10:00:00Z")], joins=False)
    report = await watch(store, ehr)
    assert (report.batched, report.touched) == (False, ["case-2"])
    assert [q["patient"] for q in ehr.queries[1:]] == [["Patient/pat-0"], ["Patient/pat-1"], ["Patient/pat-2"]]


async def test_the_next_round_starts_an_overlap_before_the_watermark_and_skips_versions_read(store: Store) -> None:
    seen = encounter("e1", "pat-1", "2024-05-01T10:00:00Z")
    first = await watch(store, Ehr([seen]))
    settle_watch(store, BASE, first, failed=[])
    with store.session() as s:  # the tracker read e1 (it keeps it in the ledger)
        assert get_watermark(s, BASE, WATCH_MARK) == "2024-05-01T10:00:00Z"
        put_ledger(
            s,
            [
                LedgerEntry(
                    server_base=BASE,
                    resource_type="Encounter",
                    key="e1",
                    case_id="case-1",
                    server_id="e1",
                    version_id="1",
                )
            ],
        )
    ehr = Ehr([seen, encounter("e2", "pat-0", "2024-05-01T10:00:30Z")])
    again = await watch(store, ehr)
    since = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC) - OVERLAP
    assert ehr.queries[0]["_lastUpdated"] == [f"gt{since.isoformat()}"]
    assert (again.encounters, again.touched) == (1, ["case-0"])  # e1 came back in the overlap: already read


async def test_a_failed_case_keeps_the_watermark_and_an_unwatched_case_is_seeded(store: Store) -> None:
    with store.session() as s:
        save_case(
            s,
            Case(
                id="case-new",
                programme="health-care",
                period=Period(start=dt.date(2024, 6, 1)),
                patient=Party(kind="patient", id="pat-new"),
            ),
            enqueue=False,
        )
    report = await watch(store, Ehr([encounter("e1", "pat-1", "2024-05-01T10:00:00Z")]))
    assert report.seeded == ["case-new"] and "case-new" not in report.touched
    settle_watch(store, BASE, report, failed=["case-1"])
    with store.session(read_only=True) as s:
        assert get_watermark(s, BASE, WATCH_MARK) is None  # case-1's change is read again next round
    again = await watch(store, Ehr([]))
    assert again.seeded == []  # case-new is watched from now on


async def test_merged_records_are_looked_for_one_at_a_time_where_joined_ids_are_refused(store: Store) -> None:
    """The look for merged records runs before the pull (``merges_first``): a server refusing
    ``Patient?_id=a,b`` must not leave the merges unseen."""
    retired = {
        "resourceType": "Patient",
        "id": "pat-1",
        "active": False,
        "link": [{"type": "replaced-by", "other": {"reference": "Patient/pat-1-2"}}],
    }

    def patients(request: httpx.Request) -> httpx.Response:
        ids = parse_qs(request.url.query.decode()).get("_id", [""])[0]
        if "," in ids:
            return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [{"code": "invalid"}]})
        found = [{"resource": retired}] if ids == "pat-1" else []
        return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "entry": found})

    with respx.mock(base_url=BASE) as mock:
        mock.get("/Patient").mock(side_effect=patients)
        mock.get("/Patient/pat-1-2").respond(json={"resourceType": "Patient", "id": "pat-1-2", "active": True})
        mock.get("/metadata").respond(json={"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"})
        async with AsyncFhirClient(BASE, enforce_capabilities=False) as client:
            found = await merges_first(store, client)

    assert (found.cases, found.records) == (["case-1"], 1)
    with store.session(read_only=True) as s:
        entry = get_ledger(s, BASE, "Patient", "pat-1")
    assert entry is not None and entry.server_id == "pat-1-2"
