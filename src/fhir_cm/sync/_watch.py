"""The Encounter watch: what the hospital recorded about the patients of open cases, since last time.

A pull reads the resources that carry fhir-cm's identifier; the hospital's own Encounters carry
none, so a pull alone never sees an admission, a transfer or a discharge the hospital records. Each
pull round therefore also asks the server for the Encounters of the patients of every open case
that changed since a per-server watermark, whoever wrote them:

* **batched**: ``Encounter?patient=Patient/a,Patient/b,…`` for ``BATCH`` patients at a time, where the
  server takes a comma-joined reference (HAPI does); one search per patient where it refuses one;
* **paged and bounded**: results are read page by page and only the patient of each changed
  Encounter is kept (a set of ids), never the Encounters themselves — the tracker reads a touched
  case's Encounters itself;
* **merged records too**: ``Patient?_id=a,b,…`` changed since the watermark, for the same patients; one
  that now has a ``replaced-by`` link (the hospital merged it into another) touches its cases, whose
  tracker follows the link (``_patient_links``) — what the hospital records from then on is under
  the survivor, which no Encounter search here asked for yet. The records this search returns of
  patients whose cases the round touched are handed to the round's tracker
  (``WatchReport.patients_read``), which does not ask for them again;
* **new only**: an Encounter whose version the ledger already holds (the tracker read it) is
  skipped, so the overlap kept behind the watermark does not touch its case again and again.

The tracker then runs for exactly the cases whose patients had a changed Encounter — a status or
period change of an Encounter already known (admission in progress → discharged) as much as a new
one. A case first seen open (enrolled since the watermark, or on a first round) gets its patient's
whole Encounter history read once (``store._watch`` remembers which). The watermark is the newest
``meta.lastUpdated`` read, and moves only once the cases it touched were tracked.

A round that has no watermark and no patient watched yet (the first) reads nothing itself: every
open case is seeded, and the tracker reads their histories. The watermark is then the server's time
of the tracker's first search (``TransitionsReport.read_from``: its Bundle's ``meta.lastUpdated``,
or the answer's ``Date`` where Bundles carry no time: the server's clock, never this machine's), before which every history it read was complete; the
next round asks for what changed since then, less ``OVERLAP``, as any other. (Not the newest
``meta.lastUpdated`` the seeding read: histories read one after another, over minutes, would miss
what changed for the first patients before the last were read.)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from ..fhir import AsyncFhirClient, FhirError, InvalidRequest
from ..mapping import patient_of
from ..store import (
    Store,
    get_watermark,
    ledger_by_server_id,
    mark_watched,
    open_case_patients,
    set_watermark,
    watched_cases,
)
from ._intake import instant, last_updated_of, later_mark, version_of
from ._membership import patient_ids
from ._patient_links import BATCH, follow_chains, record_survivor, replaced_by, replacing_records

__all__ = [
    "BATCH",
    "WATCH_MARK",
    "MergesFirst",
    "WatchReport",
    "changed_encounter_patients",
    "merges_first",
    "settle_watch",
]

log = logging.getLogger("fhir_cm.sync")

#: The watermark's name in the store (the pull's own ``Encounter`` watermark covers ours only).
WATCH_MARK = "Encounter:watch"
PAGE_SIZE = 200
#: How far behind the watermark each round starts again (as the pull): Encounters committed out of
#: order are not missed; those seen before are recognised by their version.
OVERLAP = dt.timedelta(seconds=60)


class WatchReport(BaseModel):
    """What one round of the watch read, and which cases it handed to the tracker."""

    patients: int = Field(default=0, description="Patients of open cases watched.")
    searches: int = Field(default=0, description="Searches issued (their first page).")
    encounters: int = Field(default=0, description="Changed Encounters read (new versions only).")
    batched: bool | None = Field(default=None, description="Whether comma-joined patient searches were used.")
    seeded: list[str] = Field(
        default_factory=list, description="Cases whose whole Encounter history is read this round."
    )
    touched: list[str] = Field(
        default_factory=list,
        description="Cases with a changed Encounter since the watermark, or whose patient's record was merged.",
    )
    merged: int = Field(default=0, description="Patient records found replaced by another since the watermark.")
    watermark: str | None = Field(
        default=None, description="The newest meta.lastUpdated read (the next round's start)."
    )
    _patients: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    def keep_patient(self, record: Mapping[str, Any]) -> None:
        """Keep a Patient record the round read whose cases it touched (only those: memory stays
        bounded by what the tracker reads anyway when a hospital updates every record at once)."""
        self._patients[str(record["id"])] = dict(record)

    def patients_read(self) -> dict[str, dict[str, Any]]:
        """The Patient records the search for merged records returned of the patients whose cases this
        round touched, by id: the tracker of the same round takes them as read rather than asking for
        them again (not kept past the round)."""
        return dict(self._patients)


class _Watched(BaseModel):
    """The open cases, split into those watched before and those first seen, by the ids of their patients."""

    cases_by_patient: dict[str, set[str]]
    seeded: list[str]
    mark: str | None


def _open_cases(store: Store, base: str) -> _Watched:
    by_patient: dict[str, set[str]] = defaultdict(set)
    with store.session(read_only=True) as session:
        watched = watched_cases(session, base)
        first_seen = []
        for case_id, patient in open_case_patients(session):
            if case_id not in watched:
                first_seen.append(case_id)
                continue
            for pid in patient_ids(session, base, patient):
                by_patient[pid].add(case_id)
        mark = get_watermark(session, base, WATCH_MARK)
    return _Watched(cases_by_patient=dict(by_patient), seeded=sorted(first_seen), mark=mark)


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _Reader:
    """Reads changed Encounters of a list of patients, keeping only which patients they concern."""

    def __init__(self, store: Store, client: AsyncFhirClient, since: dt.datetime | None, report: WatchReport) -> None:
        self.store, self.client, self.since, self.report = store, client, since, report
        self.patients: set[str] = set()
        self.latest: str | None = None

    async def read(self, patients: list[str]) -> None:
        reference = ",".join(f"Patient/{p}" for p in patients)
        search = self.client.search("Encounter").where("patient", reference).count(PAGE_SIZE)
        if self.since is not None:
            search = search.where("_lastUpdated", f"gt{self.since.isoformat()}")
        self.report.searches += 1
        wanted = set(patients)
        async for page in search.pages():
            found = [r for r in page.matches if r.get("resourceType") == "Encounter"]
            now = dt.datetime.now(dt.UTC)
            for r in found:
                self.latest = later_mark(self.latest, last_updated_of(r), now=now)
            fresh = self._unseen([r for r in found if patient_of(r) in wanted])
            self.report.encounters += len(fresh)
            self.patients.update(p for r in fresh if (p := patient_of(r)) is not None)

    async def merged(self, patients: list[str], watched: Collection[str]) -> None:
        """Which of these patients' records changed since the watermark into one replaced by another
        (a merge) not ``watched`` yet: the hospital records what follows under the survivor, which the
        Encounter search above does not ask for until the tracker has followed the link and the ledger
        maps the patient to it (``_patient_links``). A record the merge deleted is found by the
        survivor changed since then that ``replaces`` it (``replacing_records``)."""
        search = self.client.search("Patient").where("_id", ",".join(patients)).count(PAGE_SIZE)
        if self.since is not None:
            search = search.where("_lastUpdated", f"gt{self.since.isoformat()}")
        wanted = set(patients)
        base = self.client.base_url
        merged: set[str] = set()
        async for page in search.pages():
            found = [r for r in page.matches if r.get("resourceType") == "Patient" and r.get("id") in wanted]
            now = dt.datetime.now(dt.UTC)
            for r in found:
                self.latest = later_mark(self.latest, last_updated_of(r), now=now)
                survivor = replaced_by(r, base)
                if survivor is not None and survivor not in watched:
                    merged.add(str(r["id"]))
                if r["id"] in self.patients or r["id"] in merged:  # its cases are tracked this round: kept
                    self.report.keep_patient(r)
        # A merge that deleted the record leaves it nothing to say: the survivor that replaces it may.
        replacing = await replacing_records(self.client, patients, since=self.since)
        now = dt.datetime.now(dt.UTC)
        for old, survivor_record in replacing.items():
            self.latest = later_mark(self.latest, last_updated_of(survivor_record), now=now)
            if survivor_record.get("id") not in watched:
                merged.add(old)
        self.patients |= merged
        self.report.merged += len(merged)

    def _unseen(self, encounters: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The Encounters whose version the ledger does not hold yet (the tracker has not read them)."""
        if not encounters:
            return []
        base = self.client.base_url
        out = []
        with self.store.session(read_only=True) as session:
            for r in encounters:
                held = ledger_by_server_id(session, base, "Encounter", str(r.get("id")))
                if held is None or held.version_id is None or held.version_id != version_of(r):
                    out.append(r)
        return out


class MergesFirst(BaseModel):
    """What ``merges_first`` found: the watched patients' records merged since the watermark."""

    cases: list[str] = Field(default_factory=list, description="Their open cases (to track).")
    records: int = Field(default=0, description="Patient records found merged into one not watched yet.")
    latest: str | None = Field(default=None, description="The newest meta.lastUpdated read.")
    _records: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)

    def records_read(self) -> dict[str, dict[str, Any]]:
        """The merged records and their survivors as read, by id: the round's tracker takes them as
        read rather than asking for them again."""
        return dict(self._records)


async def merges_first(store: Store, client: AsyncFhirClient) -> MergesFirst:
    """The watch's look for merged records (``_Reader.merged``), run before the pull, each survivor
    recorded at once for its patient (``record_survivor``, as the tracker does).

    A merge that moves references (HAPI's ``$merge``) rewrites the case's own resources to name the
    survivor in the same stroke: a pull reading them before the survivor is known would take the
    case for another person's. The watch of the round then takes what was found here instead of
    searching again (``changed_encounter_patients(merges=…)``)."""
    base = client.base_url
    watched = _open_cases(store, base)
    patients = sorted(watched.cases_by_patient)
    since = instant(watched.mark) - OVERLAP if watched.mark else None
    reader = _Reader(store, client, since, WatchReport())
    try:
        for group in _batches(patients, BATCH):
            await reader.merged(group, set(patients))
    except InvalidRequest:  # no comma-joined ids here: one search per patient, as the Encounters
        reader = _Reader(store, client, since, WatchReport())
        await _merges(reader, patients, False)
    except FhirError as exc:
        log.warning("merged patient records not looked for: the server answered %s", type(exc).__name__)
    out = MergesFirst(records=len(reader.patients), latest=reader.latest)
    records = reader.report.patients_read()
    chains = (await follow_chains(client, sorted(reader.patients), records)).chains if reader.patients else {}
    out._records = records | {c.survivor: c.record for c in chains.values() if c.survivor and c.record}
    touched: set[str] = set()
    with store.session() as session:
        for pid, chain in chains.items():
            known = ledger_by_server_id(session, base, "Patient", pid)
            record_survivor(session, base, known.key if known is not None else pid, chain)
            touched |= watched.cases_by_patient.get(pid, set())
    out.cases = sorted(touched)
    return out


async def changed_encounter_patients(
    store: Store, client: AsyncFhirClient, *, batched: bool | None = None, merges: MergesFirst | None = None
) -> WatchReport:
    """One round of the watch (see the module docstring): the report names the cases to track.

    ``batched`` forces comma-joined (True) or one-per-patient (False) searches; by default the watch
    tries a batch and falls back to one search per patient when the server refuses it (400/422).
    Nothing is written here: the caller tracks the cases, then marks the seeded ones and moves the
    watermark (``settle_watch``), so a round that fails part-way is read again. ``merges``: the
    merged records ``merges_first`` found already this round (not looked for again).
    """
    base = client.base_url
    watched = _open_cases(store, base)
    report = WatchReport(seeded=watched.seeded, patients=len(watched.cases_by_patient))
    since = instant(watched.mark) - OVERLAP if watched.mark else None
    reader = _Reader(store, client, since, report)
    patients = sorted(watched.cases_by_patient)
    if patients:
        use_batches = batched if batched is not None else len(patients) > 1
        if use_batches:
            try:
                for group in _batches(patients, BATCH):
                    await reader.read(group)
            except InvalidRequest as exc:
                if batched:
                    raise
                log.info(
                    "the server refused comma-joined patients in an Encounter search (%s): one search "
                    "per patient instead",
                    exc.status,
                )
                use_batches = False
                reader = _Reader(store, client, since, report)
        if not use_batches:
            for patient in patients:
                await reader.read([patient])
        report.batched = use_batches
        if merges is None:
            await _merges(reader, patients, use_batches)
    touched = {case_id for p in reader.patients for case_id in watched.cases_by_patient.get(p, ())}
    if merges is not None:  # looked for before the pull (``merges_first``)
        touched |= set(merges.cases)
        for record in merges.records_read().values():
            report.keep_patient(record)
        report.merged = merges.records
        reader.latest = later_mark(reader.latest, merges.latest, now=dt.datetime.now(dt.UTC))
    report.touched = sorted(touched)
    report.watermark = reader.latest or watched.mark
    return report


async def _merges(reader: _Reader, patients: list[str], batched: bool) -> None:
    """``_Reader.merged`` for every watched patient, as the Encounters were read (batched or not). A
    server that refuses the search only loses the shortcut: the tracker still follows the links of
    every case it tracks."""
    try:
        for group in _batches(patients, BATCH) if batched else ([p] for p in patients):
            await reader.merged(group, set(patients))
    except FhirError as exc:
        log.warning("merged patient records not looked for: the server answered %s", type(exc).__name__)


def settle_watch(
    store: Store, server_base: str, report: WatchReport, failed: Iterable[str], *, seeded_from: str | None = None
) -> None:
    """After tracking: the seeded cases tracked without failure are watched from now on, and the
    watermark moves — only when no touched case failed, so a case whose tracking failed is read again.

    ``seeded_from`` is the server's time the tracker began reading at (``read_from``): the watermark
    of a round that had none and watched no patient yet (see the module)."""
    failures = set(failed)
    if report.watermark is None and not report.patients and report.seeded:
        report.watermark = seeded_from
    with store.session() as session:
        mark_watched(session, server_base, [c for c in report.seeded if c not in failures])
        if report.watermark is not None and not failures & set(report.touched):
            set_watermark(session, server_base, WATCH_MARK, report.watermark)
