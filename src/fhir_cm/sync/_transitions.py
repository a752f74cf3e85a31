"""The transitions tracker: Encounters on the server → the case's stays → recorded moves → follow-up.

For the patient of every open case (or of one case) it reads ``Encounter?patient=…`` (with the
Encounters' Locations where the server can include them; once per run for a patient with several cases), recognises each Encounter's care
setting (``mapping.recognise_setting``: type, location type, class; the discharge disposition from
R4 ``hospitalization`` / R5 ``admission``) and turns it into a stay of the case that keeps the
Encounter's server id (a stay the adapter wrote keeps its own id; another system's is known by
its server id, as the mapping reads it). The case's transitions are then *derived* from its stays
(``domain.derive_transitions``, with the 30-day readmission flag) and recorded in the store.

What the case manager should act on is written back by changing the case in the store — which
queues it, so the pusher sends it (this module never writes to the server itself):

* a **post-discharge follow-up** referral (``kind=follow-up``, ``for_stay`` = the hospital stay,
  due 7 days after the discharge) for every acute-hospital discharge during the case, which the
  mapping sends as a ServiceRequest (+ Task) on the case's CarePlan;
* the **receiving provider** of every move joins the care team (role by setting, for the time of
  the stay);
* the case's **current care setting** and since when (``Case.current_setting``, derived from the
  stays just changed) ride on its EpisodeOfCare, next to the ``statusHistory`` — the mapping writes
  them whenever they moved, so nothing here but the new stays is needed.

Every addition has an id derived from what caused it, so a second run adds nothing twice. An
Encounter the hospital marks ``entered-in-error`` takes its stay back: the stay is cancelled (so
its moves are no longer derived). An Encounter ``partOf`` another in the same setting (a ward's
sub-encounter) is part of its parent's stay, not a stay of its own. A follow-up is asked only for a
hospital *discharge* (``domain.hospital_discharges``); one asked for a stay that turns out not to
be one (taken back, or continued in hospital by what came in since) is cancelled while still open;
one nobody took up yet is dated again from its discharge when the hospital corrects that day.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationError
from sqlalchemy.orm import Session

from ..config import Settings
from ..domain import Referral, ReferralKind, Stay, StayStatus
from ..fhir import AsyncFhirClient, Capabilities, FhirError, InvalidRequest, SearchSet, UnsupportedByServer
from ..mapping import (
    FhirVersion,
    MappingError,
    References,
    parse_reference,
    read_resource,
    recognise_disposition,
    recognise_setting,
    resource_key,
)
from ..store import (
    Store,
    UnreadableCase,
    add_quarantine,
    settle_quarantine,
    get_case,
    get_case_record,
    case_revisions,
    record_transitions,
    save_case,
    stored_dates_as_written,
)
from ..checks import strict_problem
from ._follow_ups import FOLLOW_UP_DAYS, act_on_transitions
from ._intake import remember, server_fhir_version
from ._membership import OPEN_STATUSES, cases_patient_ids, own_bases, patient_ids, patient_of
from ._patient_links import PatientChain, follow_chains, follow_replaced_by, forget_survivor, record_survivor
from ._report import tally_set_aside
from ._transfer_summary import handoff_moves

__all__ = ["FOLLOW_UP_DAYS", "TransitionsReport", "track_transitions"]

log = logging.getLogger("fhir_cm.sync")

_PAGE_SIZE = 100
#: Asked with a patient's Encounters: a Location's type may be what says the care setting.
_LOCATIONS = "Encounter:location"
#: Encounter statuses (R4 and R5 alike) that take back what the Encounter said: the stay it showed
#: never happened, so it is cancelled and the moves it made are undone.
RETRACTED_STATUSES = frozenset({"entered-in-error"})


class TransitionsReport(BaseModel):
    """What a tracker run did (counts; case ids of the cases it changed)."""

    cases: int = 0
    encounters: int = 0
    stays_added: int = 0
    stays_updated: int = 0
    stays_folded: int = Field(
        default=0, description="Stays tracked before that turned out part of another (a ward's sub-encounter)."
    )
    unrecognised: int = Field(default=0, description="Encounters whose care setting or dates could not be read.")
    quarantined: int = Field(default=0, description="Encounters set aside this run: a new entry or a new version.")
    still_quarantined: int = Field(default=0, description="Encounters read again that an earlier run set aside.")
    transitions: int = 0
    new_transitions: int = 0
    readmissions: int = 0
    follow_ups_added: int = 0
    follow_ups_cancelled: int = Field(
        default=0, description="Open follow-ups cancelled: the stay they followed turned out not to be a discharge."
    )
    follow_ups: dict[str, list[str]] = Field(
        default_factory=dict, description="Case id → ids of the follow-up referrals added (one per hospital discharge)."
    )
    team_members_added: int = 0
    handoffs: dict[str, list[int]] = Field(
        default_factory=dict,
        description="Case id → numbers of the new moves out of a hospital, SNF or rehabilitation stay (transfer summaries due).",
    )
    failed: dict[str, str] = Field(default_factory=dict, description="Case id → why it was not tracked.")
    patients_merged: list[str] = Field(
        default_factory=list,
        description="Cases whose patient's record the hospital merged into another (replaced-by): both read.",
    )
    patients_unmerged: list[str] = Field(
        default_factory=list,
        description="Cases whose patient's merge the hospital undid: the record taken as its survivor is no longer read.",
    )
    changed_cases: list[str] = Field(default_factory=list)
    read_from: str | None = Field(
        default=None,
        description="The server's time of the run's first search (its patients' records): all it read is as new.",
    )
    _set_aside: set[int] = PrivateAttr(default_factory=set)

    def count_set_aside(self, entry_id: int, *, news: bool) -> None:
        """Count an Encounter put in quarantine (entry ``entry_id``); see ``tally_set_aside``."""
        tally_set_aside(self, self._set_aside, entry_id, news=news)


def _parts(found: list[tuple[Stay, Mapping[str, Any]]]) -> set[str]:
    """The stays of Encounters that are ``partOf`` another Encounter read, in the same setting: a
    hospitalisation recorded with a sub-encounter per ward is one stay, the parent's."""
    by_server_id = {str(enc.get("id")): stay for stay, enc in found}
    out: set[str] = set()
    for stay, enc in found:
        part_of = enc.get("partOf")
        parsed = parse_reference(part_of.get("reference")) if isinstance(part_of, Mapping) else None
        parent = by_server_id.get(parsed[1]) if parsed is not None and parsed[0] == "Encounter" else None
        if (
            parent is not None
            and parent.id != stay.id
            and parent.setting is stay.setting
            and parent.status is not StayStatus.CANCELLED
        ):
            out.add(stay.id)
    return out


def _fold(stays: dict[str, Stay], parts: Collection[str], referrals: list[Referral]) -> int:
    """Take the stays found to be parts of another out of ``stays``; one a referral names (a follow-up
    asked for before its parent came in) stays, cancelled. Returns how many were held."""
    named = {r.for_stay for r in referrals}
    held = [i for i in parts if i in stays]
    for stay_id in held:
        if stay_id in named:
            values = stays[stay_id].model_dump()
            stays[stay_id] = Stay.model_validate(
                {**values, "status": StayStatus.CANCELLED, "discharge_disposition": None}
            )
        else:
            del stays[stay_id]
    return len(held)


_Read = tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]  # a patient id's Encounters by id, Locations


class _Tracker:
    def __init__(self, store: Store, client: AsyncFhirClient, settings: Settings, version: FhirVersion) -> None:
        self.store, self.client, self.version = store, client, version
        self.system = settings.identifier_system
        self.base = client.base_url
        #: The bases the server names itself by: the client's, and its pages' fullUrls' as they come.
        #: An Encounter's ``serviceProvider`` at another is another server's Organization: an outside
        #: party, never the local one of the same id (which would join the care team as the receiver).
        self.own: set[str] = {self.base}
        self.report = TransitionsReport()
        # Set once the server refused ``_include=Encounter:location`` though its statement did not rule it out.
        self.locations_refused = False
        # The chains of the run's patients, read in batches before the first case (``follow_chains``).
        self.chains: dict[str, PatientChain] = {}
        # How many of the run's cases are still to read each patient id: a patient with several cases
        # (one per programme) has its Encounters kept until the last of them is tracked, not read again.
        self.uses: Counter[str] = Counter()
        self._kept: dict[str, _Read] = {}

    async def encounters(
        self, caps: Capabilities | None, patients: list[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The patient's Encounters (under any id the server knows them by) and the Locations included
        with them. One patient's Encounters are few: they are held in memory.

        The Locations are asked for unless the statement lists includes without this one: silence is
        not a "no" (a Location's type may be all that says a stay was in a hospice). A server that
        refuses the include all the same (400) is asked without it from then on."""
        encounters: dict[str, dict[str, Any]] = {}
        locations: list[dict[str, Any]] = []
        for patient in patients:
            kept = self._kept.pop(patient, None)
            own, found = kept if kept is not None else await self._patient_encounters(caps, patient)
            self.uses[patient] -= 1
            if self.uses[patient] > 0:  # another case of the run reads this patient too
                self._kept[patient] = (own, found)
            encounters.update(own)
            locations += found
        return list(encounters.values()), locations

    async def _patient_encounters(self, caps: Capabilities | None, patient: str) -> _Read:
        """One patient id's Encounters by id, and the Locations included with them (see ``encounters``)."""
        encounters: dict[str, dict[str, Any]] = {}
        search = self.client.search("Encounter").where("patient", f"Patient/{patient}").count(_PAGE_SIZE)
        if not self.locations_refused and not (caps and caps.unknown_includes("Encounter", "_include", [_LOCATIONS])):
            try:
                return encounters, await self._read(search.include(_LOCATIONS), patient, encounters)
            except (InvalidRequest, UnsupportedByServer) as exc:  # 400: invalid, or not-supported
                said = "the server refused _include=%s (%s): Encounters read without their Locations"
                log.info(said, _LOCATIONS, exc.status)
                self.locations_refused = True
        return encounters, await self._read(search, patient, encounters)

    async def _read(
        self, search: SearchSet[dict[str, Any]], patient: str, encounters: dict[str, dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Read ``search`` into ``encounters`` (the patient's own); the Locations included with them."""
        locations: list[dict[str, Any]] = []
        async for page in search.pages():
            # Another server's Patient/<id> is another person, though a server may answer it to
            # ``patient=Patient/<id>`` (sekmet does): the server's own bases, the client's and its fullUrls'.
            own = {self.client.base_url, *own_bases(page.entries)}
            self.own |= own
            for r in page.matches:
                if r.get("resourceType") == "Encounter" and patient_of(r, bases=own) == patient:
                    encounters[str(r.get("id"))] = r
            locations += [r for r in page.included if r.get("resourceType") == "Location"]
        return locations

    def stay_of(self, encounter: Mapping[str, Any], locations: list[dict[str, Any]]) -> Stay | None:
        """The stay an Encounter shows, or None when its setting or dates cannot be read."""
        setting = recognise_setting(encounter, self.version, locations)
        if setting is None:
            return None
        try:
            values = read_resource(encounter, self.version, self.system, References(self.system, bases=self.own))
        except MappingError:
            return None
        values.pop("episode", None)
        values["setting"] = setting
        values["discharge_disposition"] = recognise_disposition(encounter, self.version)
        if encounter.get("status") in RETRACTED_STATUSES:
            values["status"] = StayStatus.CANCELLED  # taken back: no stay, no move, no disposition
            values["discharge_disposition"] = None
        elif values.get("status") is None:
            return None  # a status the domain cannot hold (unknown) is not read as finished
        if values.get("status") in (StayStatus.PLANNED, StayStatus.IN_PROGRESS, "planned", "in-progress"):
            values["discharge_disposition"] = None  # a disposition before the end is a plan, not a move
        try:
            return Stay.model_validate(values)
        except ValidationError:
            return None

    def merged(self, session: Session, case_id: str, party_id: str, chains: list[PatientChain]) -> None:
        """Note (and record, see ``record_survivor``) a case patient's record replaced by another."""
        survivor = next((c for c in chains if c.survivor is not None), None)
        if survivor is None:
            return
        self.report.patients_merged.append(case_id)
        if record_survivor(session, self.base, party_id, survivor):
            log.info("case %s: its patient's record was merged into another; that one is read from now on", case_id)

    def unmerged(self, case_id: str, party_id: str) -> bool:
        """Note (and record, see ``forget_survivor``) a case patient's own record in use again while
        the ledger maps it to another: the merge was undone, and the other record is not read."""
        with self.store.session() as session:
            if not forget_survivor(session, self.base, party_id, self.system):
                return False
        self.report.patients_unmerged.append(case_id)
        log.info("case %s: its patient's record is in use again (a merge undone); the other is no longer read", case_id)
        return True

    async def track(self, caps: Capabilities | None, case_id: str) -> None:
        with self.store.session(read_only=True) as session:
            case = get_case(session, case_id)
            if case is None:
                raise LookupError(f"no case {case_id}")
            patients = patient_ids(session, self.base, case.patient.id)
        chains = [self.chains.get(p) or await follow_replaced_by(self.client, p) for p in patients]
        if len(chains) > 1 and chains[0].in_use and self.unmerged(case_id, case.patient.id):
            chains = chains[:1]
        encounters, locations = await self.encounters(caps, list(dict.fromkeys(i for c in chains for i in c.ids)))
        self.report.cases += 1
        self.report.encounters += len(encounters)
        found: list[tuple[Stay, Mapping[str, Any]]] = []
        readable: list[Mapping[str, Any]] = []
        with self.store.session() as session:
            for enc in encounters:
                problem = strict_problem(enc, self.version)
                if problem is not None:
                    entry = add_quarantine(session, source=self.base, raw=enc, reason=problem)
                    self.report.count_set_aside(entry.id, news=entry.news)
                    continue
                readable.append(enc)
                stay = self.stay_of(enc, locations)
                if stay is None:
                    self.report.unrecognised += 1
                    continue
                found.append((stay, enc))
            settle_quarantine(session, self.base, readable)  # a version set aside earlier is gone
            record = get_case_record(session, case_id)
            if record is None:
                return
            self.merged(session, case_id, case.patient.id, chains)
            case = record.case
            stays = {s.id: s for s in case.stays}
            parts = _parts(found)
            self.report.stays_folded += _fold(stays, parts, case.referrals)
            for stay, shown_by in found:
                held = stays.get(stay.id)
                if stay.id in parts:
                    continue
                if held is None and shown_by.get("status") in RETRACTED_STATUSES:
                    self.report.unrecognised += 1  # never a stay of the case: nothing to take back
                    continue
                if held is None:
                    self.report.stays_added += 1
                elif held != stay:
                    self.report.stays_updated += 1
                stays[stay.id] = stay
            with_stays = case.model_validate({**case.model_dump(), "stays": [s.model_dump() for s in stays.values()]})
            updated, follow_ups, members, withdrawn = act_on_transitions(with_stays)
            self.report.follow_ups_added += follow_ups
            self.report.follow_ups_cancelled += withdrawn
            if follow_ups:
                had = {r.id for r in with_stays.referrals}
                self.report.follow_ups[case_id] = [
                    r.id for r in updated.referrals if r.kind is ReferralKind.FOLLOW_UP and r.id not in had
                ]
            self.report.team_members_added += members
            for _, source in found:
                key = resource_key(source, self.system)
                if key is not None:
                    remember(session, self.base, case_id, key, source, self.version, only_if_newer=True)
            # The Encounters just kept may write a stay's days as a month: saved with the case (``save_case``).
            written = stored_dates_as_written(session, updated, self.system)
            if save_case(session, updated, expected_revision=record.revision, written=written) != record.revision:
                self.report.changed_cases.append(case_id)
            transitions = updated.transitions
            sources = {s.id: str(e["id"]) for s, e in found if isinstance(e.get("id"), str)}
            new = record_transitions(session, case_id, transitions, source_encounters=sources)
            moves = [(t.from_stay, t.to_stay, t.date) for t in handoff_moves(updated)]
            numbers = [moves.index(k) + 1 for t in new if (k := (t.from_stay, t.to_stay, t.date)) in moves]
            if numbers:
                self.report.handoffs[case_id] = numbers
            self.report.transitions += len(transitions)
            self.report.new_transitions += len(new)
            self.report.readmissions += sum(t.readmission for t in new)


async def track_transitions(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    case_id: str | None = None,
    case_ids: Collection[str] | None = None,
    patients_read: Mapping[str, dict[str, Any]] | None = None,
) -> TransitionsReport:
    """Track the moves between care settings of one case, of ``case_ids``, or of every open case.

    See the module docstring. A case whose Encounters cannot be read (the server refuses, a
    concurrent change) is reported in ``failed`` and the others go on; the changes are queued for
    the pusher, not sent. ``patients_read``: Patient records by server id the same round read already
    (the watch's), not asked for again.
    """
    version = await server_fhir_version(client, settings)
    try:
        caps: Capabilities | None = await client.capabilities()
    except FhirError:
        caps = None
    if case_id is not None:
        wanted = [case_id]
    elif case_ids is not None:
        wanted = sorted(case_ids)
    else:
        with store.session(read_only=True) as session:
            wanted = list(case_revisions(session, status=OPEN_STATUSES))  # ids: none is decoded here
    tracker = _Tracker(store, client, settings, version)
    patient_ids_of_cases = cases_patient_ids(store, client.base_url, wanted)
    tracker.uses.update(patient_ids_of_cases)
    read = await follow_chains(client, patient_ids_of_cases, patients_read)
    tracker.chains, tracker.report.read_from = read.chains, read.server_time
    for cid in wanted:
        try:
            await tracker.track(caps, cid)
        except (FhirError, LookupError, ValueError, UnreadableCase) as exc:
            tracker.report.failed[cid] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            log.warning("transitions of case %s not tracked: %s", cid, type(exc).__name__)
    return tracker.report
