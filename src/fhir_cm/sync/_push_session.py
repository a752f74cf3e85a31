"""The push session: one push run against one server and what it learnt there, shared by its cases.

``PushSession`` holds the server's capabilities (FHIR release, which types take a conditional
create on a business identifier and which a stable id: ``_identity``), the adapter's Device (for
Provenance), the transaction limit remembered for the server (``_limits``) and, per batch, the
*preparation*: the cases' ledgers, their patients and other parties resolved on the server
(``_parties``), and the stable-id or identifier lookups that find copies written elsewhere. It is the
only writer of the ledger during a push (``record``; a case's entries wait in ``keep`` until its
outbox row is settled with them); the per-case rounds (``_push_case``) read from it and record
through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..domain import Case, Party
from ..fhir import AmbiguousMatch, AsyncFhirClient, BundleEntry, Capabilities, Conflict, FhirError
from ..mapping import ResourceKey, case_plan, episode_key, if_none_exist
from ..store import LedgerEntry, Store, content_hash, find_ledger, get_ledger, list_ledger, put_ledger
from ._identity import Identity, find_by_identifier, read_existing
from ._intake import server_fhir_version
from ._off_loop import off_loop
from ._limits import load_transaction_limit
from ._parties import PartyKey, case_parties, resolve_parties
from ._provenance import device_key, device_resource

__all__ = ["PushSession", "failure_reason", "version_of"]

log = logging.getLogger("fhir_cm.sync")


def version_of(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    return meta.get("versionId") if isinstance(meta, Mapping) else None


def failure_reason(exc: FhirError) -> str:
    """A failure reason without PHI: the error class, status and resource type, or for a failure
    with no status (the network, a malformed answer) what happened (``FhirError.summary``)."""
    if exc.status is None and exc.summary:
        return exc.summary
    where = f" ({exc.resource_type})" if exc.resource_type else ""
    status = f" {exc.status}" if exc.status else ""
    return f"{type(exc).__name__}{status}{where}"


@dataclass
class PushSession:
    """One push run against one server: what it learnt of the server, shared by its cases."""

    store: Store
    client: AsyncFhirClient
    settings: Settings
    version: str = "R4"
    identity: Identity = field(default_factory=lambda: Identity(None, ""))
    device_ref: str | None = None
    ledgers: dict[str, dict[ResourceKey, LedgerEntry]] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)  # party id → server id
    parties: dict[PartyKey, str] = field(default_factory=dict)  # other parties: (type, id) → server id
    absent: set[ResourceKey] = field(default_factory=set)  # stable-id resources looked up and not there
    found: dict[ResourceKey, dict[str, Any]] = field(default_factory=dict)  # … and there
    saved_limit: int | None = None  # the transaction limit the store holds for this server
    unsaved: dict[str, list[LedgerEntry]] = field(default_factory=dict)  # by case, until its row is settled
    # Why a patient or party could not be found or created: the server's error by (type, id), or
    # the failure of a whole batch's preparation. A case left waiting for one says so.
    refused: dict[tuple[str, str], FhirError] = field(default_factory=dict)
    unprepared: FhirError | None = None

    @property
    def base(self) -> str:
        return self.client.base_url

    @property
    def system(self) -> str:
        return self.settings.identifier_system

    def checks_if_match(self, resource_type: str) -> bool:
        """Whether the server declares it refuses a stale ``If-Match`` on the type (see ``_push_case``)."""
        caps = self.client.known_capabilities
        return caps is not None and caps.checks_if_match(resource_type)

    # -- set-up -----------------------------------------------------------------------------------

    async def start(self) -> None:
        caps: Capabilities | None
        try:
            caps = await self.client.capabilities()
        except FhirError as exc:
            log.warning("no usable CapabilityStatement (%s): assuming conditional creates work", failure_reason(exc))
            caps = None
        self.version = await server_fhir_version(self.client, self.settings)
        self.identity = Identity(caps, self.system)
        self.saved_limit = load_transaction_limit(self.store, self.client, self.settings)
        if self.settings.push_provenance:
            self.device_ref = await self._ensure_device()

    async def _ensure_device(self) -> str:
        key = device_key()
        with self.store.session(read_only=True) as s:
            known = get_ledger(s, self.base, key.type, key.value)
        if known is not None and known.server_id:
            return f"Device/{known.server_id}"
        device = device_resource(self.system, self.version)
        copy: dict[str, Any] | None = None
        if self.identity.by_identifier("Device"):
            for attempt in range(3):
                try:
                    result = await self.client.create(device, if_none_exist=if_none_exist(self.system, key.value))
                    copy = result.resource or {**device, "id": result.id}
                    break
                except Conflict:
                    # Workers starting together race to create it; the loser's conditional create is
                    # refused (HAPI-2745) and, sent again, finds the winner's Device.
                    if attempt == 2:
                        raise
                except AmbiguousMatch:
                    # A server that does not serialise conditional creates let two racing workers
                    # each make one. Both are ours and alike: every worker settles on the same one.
                    copy = await self._first_device(key.value)
                    break
        else:
            result = await self.client.update({**device, "id": self.identity.stable_id(key)}, versioned=False)
            copy = result.resource or {**device, "id": result.id}
        assert copy is not None
        self.record([self.ledger_entry(key, None, copy)])
        return f"Device/{copy['id']}"

    async def _first_device(self, value: str) -> dict[str, Any]:
        found = await self.client.search("Device").where("identifier", f"{self.system}|{value}").fetch_all()
        if not found:
            raise AmbiguousMatch("Device matched several resources, then none")
        return min(found, key=lambda d: (len(str(d["id"])), str(d["id"])))

    # -- ledger -----------------------------------------------------------------------------------

    def ledger_entry(
        self, key: ResourceKey, case_id: str | None, copy: dict[str, Any], *, content: bytes | None = None
    ) -> LedgerEntry:
        """The ledger's record of a server copy (``content``: its ``content_json``, if already made)."""
        raw_meta = copy.get("meta")
        meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
        return LedgerEntry(
            server_base=self.base,
            resource_type=key.type,
            key=key.value,
            case_id=case_id,
            server_id=copy.get("id"),
            version_id=meta.get("versionId"),
            content_hash=content_hash(copy, content=content),
            server_copy=copy,
            last_updated=meta.get("lastUpdated"),
        )

    def record(self, entries: list[LedgerEntry]) -> None:
        if entries:
            with self.store.session() as s:
                put_ledger(s, entries)

    def keep(self, case_id: str, entries: list[LedgerEntry]) -> None:
        """Ledger entries of a case being pushed: written with its outbox row's settling, in the
        same transaction (``take_unsaved``) — one commit per case, not one per round and another
        for the row. A process killed before that loses only what a re-push finds again on the
        server (conditional creates match, stable ids are read back)."""
        if entries:
            self.unsaved.setdefault(case_id, []).extend(entries)

    def take_unsaved(self, case_id: str) -> list[LedgerEntry]:
        return self.unsaved.pop(case_id, [])

    # -- per batch --------------------------------------------------------------------------------

    async def prepare(self, cases: list[Case]) -> None:
        """Load the cases' ledgers, resolve their patients and look up stable-id resources."""
        ledgers, patients = await off_loop(self.store, lambda: self._load(cases))
        self.ledgers |= ledgers
        self.patients |= patients
        lookups = {
            key: (key.type, self.identity.stable_id(key))
            for case in cases
            for key, _, _ in case_plan(case, self.ledgers[case.id])
            if key not in self.ledgers[case.id]
            and not self.identity.by_identifier(key.type)
            and key not in self.found
            and key not in self.absent
        }
        # Independent round trips (patients, searches by identifier, stable-id reads: disjoint
        # resource types), so they are in flight together rather than one after the other.
        (found, missing), _, _ = await asyncio.gather(
            read_existing(self.client, lookups.values()),
            self._resolve_patients([c for c in cases if c.patient.id not in self.patients]),
            self._find_pushed_elsewhere([c for c in cases if not self.ledgers[c.id]]),
        )
        for key, target in lookups.items():
            if target in found:
                self.found[key] = found[target]
            elif target in missing:
                self.absent.add(key)
        await self._resolve_parties(cases)

    async def _resolve_parties(self, cases: list[Case]) -> None:
        """Practitioners, organisations and related persons the cases name (see ``_parties``); after
        the patients, whom a new RelatedPerson must name."""
        wanted: dict[PartyKey, tuple[PartyKey, Party, str | None]] = {}
        for case in cases:
            patient = self.patients.get(case.patient.id)
            for key, party in case_parties(case).items():
                if key not in self.parties and key not in wanted:
                    wanted[key] = (key, party, f"Patient/{patient}" if patient else None)
        self.parties |= await resolve_parties(self.client, self.system, wanted.values(), self.refused)

    def _load(self, cases: list[Case]) -> tuple[dict[str, dict[ResourceKey, LedgerEntry]], dict[str, str]]:
        """The cases' ledger entries, and the server ids of their patients the ledger knows."""
        ledgers: dict[str, dict[ResourceKey, LedgerEntry]] = {case.id: {} for case in cases}
        with self.store.session(read_only=True) as s:  # one query for the cases, one for their patients
            for e in list_ledger(s, self.base, case_ids=list(ledgers)):
                if e.case_id is not None:
                    ledgers[e.case_id][ResourceKey(e.resource_type, e.key)] = e
            wanted = {case.patient.id for case in cases} - set(self.patients)
            known = find_ledger(s, self.base, "Patient", keys=wanted) if wanted else []
        patients = {e.key: e.server_id for e in known if e.key in wanted and e.server_id}
        return ledgers, patients

    async def prepare_quietly(self, cases: list[Case]) -> None:
        """``prepare``, logging a server failure: each case then finds out for itself (and retries)."""
        if not cases:
            return
        try:
            await self.prepare(cases)
        except FhirError as exc:
            log.warning("preparing a batch failed: %s", failure_reason(exc))
            self.unprepared = exc

    async def _find_pushed_elsewhere(self, cases: list[Case]) -> None:
        """Cases this ledger has never pushed here may have been pushed from another store: their
        EpisodeOfCare says so (one search per case); then every resource of theirs is looked up,
        so what exists is merged onto instead of being "created" again (and credited as such)."""
        by_identifier = self.identity.by_identifier
        episodes = [episode_key(c) for c in cases if by_identifier("EpisodeOfCare")]
        found = await find_by_identifier(self.client, self.system, episodes)
        if not found:
            return
        pushed = [c for c in cases if episode_key(c) in found]
        keys = [k for c in pushed for k, _, _ in case_plan(c) if by_identifier(k.type) and k not in found]
        found |= await find_by_identifier(self.client, self.system, keys)
        self.found |= found

    async def _resolve_patients(self, cases: list[Case]) -> None:
        parties = {c.patient.id: c.patient for c in cases}
        if not parties:
            return
        found, missing = await read_existing(self.client, (("Patient", pid) for pid in parties), self.refused)
        entries = [self.ledger_entry(ResourceKey("Patient", pid), None, copy) for (_, pid), copy in found.items()]
        creates = [pid for (_, pid) in missing if pid in parties]
        if creates:
            bundle = []
            for pid in creates:
                patient: dict[str, Any] = {
                    "resourceType": "Patient",
                    "identifier": [{"system": self.system, "value": pid}],
                }
                if parties[pid].name:
                    patient["name"] = [{"text": parties[pid].name}]
                bundle.append(BundleEntry.create(patient, if_none_exist=if_none_exist(self.system, pid)))
            try:
                result = await self.client.batch(bundle, max_entries=100)
            except FhirError as exc:
                log.warning("creating patients failed: %s", failure_reason(exc))
                self.refused |= {("Patient", pid): exc for pid in creates}
            else:
                for pid, outcome in zip(creates, result.entries, strict=True):
                    if outcome.error is not None:
                        self.refused[("Patient", pid)] = outcome.error
                    if outcome.ok and outcome.id:
                        copy = outcome.resource or await self.read_back("Patient", outcome.id)
                        if copy is not None:
                            entries.append(self.ledger_entry(ResourceKey("Patient", pid), None, copy))
        self.record(entries)
        for e in entries:
            if e.server_id:
                self.patients[e.key] = e.server_id
                self.refused.pop(("Patient", e.key), None)

    async def read_back(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """Read one resource back (as a batch entry: an enforcing client refuses plain reads of
        types a CapabilityStatement leaves out, as sekmet does Goal and CareTeam)."""
        found, _ = await read_existing(self.client, [(resource_type, resource_id)])
        copy = found.get((resource_type, resource_id))
        if copy is None:
            log.warning("reading back a written %s failed", resource_type)
        return copy
