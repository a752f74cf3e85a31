"""Push: outbox → server, one transaction Bundle per case, idempotent and resumable.

How a claimed batch of cases is pushed:

1. **Prepare** (per batch, a couple of batch requests): the patients the ledger does not know on
   this server are resolved — ``GET Patient/<party id>`` (the EHR's own record), else a minimal
   Patient (identifier + name) is created conditionally on ``<system>|<party id>``; references to
   the patient are pointed at whatever the server calls it. Resources found by a stable id (see
   ``_identity``) and unknown to the ledger are looked up, so an existing copy is merged onto.
2. **Per case** (bounded by a semaphore): the case is mapped over the ledger's last server copies
   (lossless merge). A resource whose content equals its server copy is *unchanged* and not sent;
   nor is another system's resource (no business identifier of ours, e.g. a hospital's Encounter
   read as a stay) unless the case manager changed what the case reads from it, and then only the
   elements carrying that change (``_foreign``);
   a known one is ``PUT`` with ``If-Match``; a new one is a conditional create (or a stable-id PUT).
   One Provenance per activity rides along. The client degrades transaction → batch → single
   requests when the server refuses, and splits a transaction too large for the server into parts
   within its limit (learnt from the refusal, remembered per server: ``_limits``); every request
   stays idempotent. A refusal reaches the report in the server's words, without our data
   (``_refusals``).
3. **Record** each entry's outcome in the ledger at once (server id, versionId, server copy — read
   back when the answer had no body), then, only after that, complete the outbox row. A process
   killed at any point leaves the row claimed; the next push on the same host takes it over at
   once (elsewhere, once the lease expires: ``_leases``) and finds on the server (by identifier or
   stable id) whatever the dead one wrote.

Pipelining: the first claim runs (in a thread) while the capabilities request is out, and of a
batch larger than twice the concurrency the first wave is prepared alone and sent while the rest
is prepared, so the server is not idle while a whole batch's lookups come back; once the batch's
last cases are out, the next batch is claimed and prepared while they finish.

Rounds: a conditional create that matched an existing resource whose content differs is followed
by an ``If-Match`` update of it; a version conflict (409/412) re-reads the server copy, merges only
what the adapter changed (``_merge``) and retries once — clashing elements become a conflict in the
store and the case fails until a person decides. Transient failures (429, 5xx, lost answers) retry
the round a bounded number of times, then leave the row to a later push.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from ..config import Settings
from ..domain import Case, Party
from ..fhir import (
    AsyncFhirClient,
    BundleEntry,
    Capabilities,
    Conflict,
    FhirError,
    InvalidResponse,
    ServerReason,
    TransientError,
    VersionConflict,
    WriteResult,
)
from ..mapping import (
    MappingError,
    References,
    ResourceKey,
    case_plan,
    case_to_resources,
    check_version,
    episode_key,
    if_none_exist,
)
from ..store import (
    LeaseHolder,
    LeaseLost,
    LedgerEntry,
    OutboxItem,
    Store,
    add_conflict,
    claim_outbox,
    complete,
    content_hash,
    enqueue,
    fail,
    get_case,
    get_ledger,
    list_cases,
    list_ledger,
    put_ledger,
    release,
    save_case,
)
from ..terminology import terminology
from ._foreign import foreign_update, is_foreign
from ._limits import load_transaction_limit, save_transaction_limit
from ._identity import Identity, find_by_identifier, read_existing, rewrite_references
from ._intake import server_fhir_version
from ._leases import LeaseKeeper, take_over
from ._merge import compare, keep_server
from ._parties import PartyKey, case_parties, resolve_parties
from ._provenance import device_key, device_resource, provenance_id, provenance_resource
from ._refusals import refusal, refusal_text
from ._report import CaseFailure, PushReport

__all__ = ["default_worker_id", "enqueue_unpushed", "push_cases", "push_pending"]

log = logging.getLogger("fhir_cm.sync")

_Result = TypeVar("_Result")

#: Rounds per case: create, update what matched, one conflict retry, one transient retry.
MAX_ROUNDS = 5
_RETRYABLE = (TransientError, InvalidResponse)


def default_worker_id() -> str:
    """``host:pid``: unique among the workers sharing a store, and readable in the outbox."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _CaseFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool, server: ServerReason | None = None) -> None:
        super().__init__(reason)
        self.reason, self.permanent, self.server = reason, permanent, server


@dataclass
class _Write:
    key: ResourceKey
    entry: BundleEntry
    kind: str  # "create" | "update"

    @property
    def resource(self) -> dict[str, Any]:
        return self.entry.resource or {}

    @property
    def target(self) -> str:
        return self.entry.full_url or self.entry.url


def _version(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    return meta.get("versionId") if isinstance(meta, Mapping) else None


def _reason(exc: FhirError) -> str:
    """A failure reason without PHI: the error class, status and resource type only."""
    where = f" ({exc.resource_type})" if exc.resource_type else ""
    status = f" {exc.status}" if exc.status else ""
    return f"{type(exc).__name__}{status}{where}"


@dataclass
class _Run:
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

    @property
    def base(self) -> str:
        return self.client.base_url

    @property
    def system(self) -> str:
        return self.settings.identifier_system

    # -- set-up -----------------------------------------------------------------------------------

    async def start(self) -> None:
        caps: Capabilities | None
        try:
            caps = await self.client.capabilities()
        except FhirError as exc:
            log.warning("no usable CapabilityStatement (%s): assuming conditional creates work", type(exc).__name__)
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
        if self.identity.by_identifier("Device"):
            for attempt in range(3):
                try:
                    result = await self.client.create(device, if_none_exist=if_none_exist(self.system, key.value))
                    break
                except Conflict:
                    # Workers starting together race to create it; the loser's conditional create is
                    # refused (HAPI-2745) and, sent again, finds the winner's Device.
                    if attempt == 2:
                        raise
        else:
            result = await self.client.update({**device, "id": self.identity.stable_id(key)}, versioned=False)
        self._record([self._entry(key, None, result.resource or {**device, "id": result.id})])
        return f"Device/{result.id}"

    # -- ledger -----------------------------------------------------------------------------------

    def _entry(self, key: ResourceKey, case_id: str | None, copy: dict[str, Any]) -> LedgerEntry:
        raw_meta = copy.get("meta")
        meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
        return LedgerEntry(
            server_base=self.base,
            resource_type=key.type,
            key=key.value,
            case_id=case_id,
            server_id=copy.get("id"),
            version_id=meta.get("versionId"),
            content_hash=content_hash(copy),
            server_copy=copy,
            last_updated=meta.get("lastUpdated"),
        )

    def _record(self, entries: list[LedgerEntry]) -> None:
        if entries:
            with self.store.session() as s:
                put_ledger(s, entries)

    # -- per batch --------------------------------------------------------------------------------

    async def prepare(self, cases: list[Case]) -> None:
        """Load the cases' ledgers, resolve their patients and look up stable-id resources."""
        ledgers, patients = await _off_loop(self.store, lambda: self._load(cases))
        self.ledgers |= ledgers
        self.patients |= patients
        lookups = {
            key: (key.type, self.identity.stable_id(key))
            for case in cases
            for key, _, _ in case_plan(case, self.ledgers[case.id])
            if key not in self.ledgers[case.id] and not self.identity.by_identifier(key.type)
            and key not in self.found and key not in self.absent
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
        self.parties |= await resolve_parties(self.client, self.system, wanted.values())

    def _load(self, cases: list[Case]) -> tuple[dict[str, dict[ResourceKey, LedgerEntry]], dict[str, str]]:
        """The cases' ledger entries, and the server ids of their patients the ledger knows."""
        ledgers: dict[str, dict[ResourceKey, LedgerEntry]] = {}
        patients: dict[str, str] = {}
        with self.store.session(read_only=True) as s:
            for case in cases:
                ledgers[case.id] = {
                    ResourceKey(e.resource_type, e.key): e for e in list_ledger(s, self.base, case_id=case.id)
                }
                pid = case.patient.id
                if pid not in self.patients and (e := get_ledger(s, self.base, "Patient", pid)) and e.server_id:
                    patients[pid] = e.server_id
        return ledgers, patients

    async def prepare_quietly(self, cases: list[Case]) -> None:
        """``prepare``, logging a server failure: each case then finds out for itself (and retries)."""
        if not cases:
            return
        try:
            await self.prepare(cases)
        except FhirError as exc:
            log.warning("preparing a batch failed: %s", _reason(exc))

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
        found, missing = await read_existing(self.client, (("Patient", pid) for pid in parties))
        entries = [self._entry(ResourceKey("Patient", pid), None, copy) for (_, pid), copy in found.items()]
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
                log.warning("creating patients failed: %s", _reason(exc))
            else:
                for pid, outcome in zip(creates, result.entries, strict=True):
                    if outcome.ok and outcome.id:
                        copy = outcome.resource or await self._read("Patient", outcome.id)
                        if copy is not None:
                            entries.append(self._entry(ResourceKey("Patient", pid), None, copy))
        self._record(entries)
        for e in entries:
            if e.server_id:
                self.patients[e.key] = e.server_id

    async def _read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """Read one resource back (as a batch entry: an enforcing client refuses plain reads of
        types a CapabilityStatement leaves out, as sekmet does Goal and CareTeam)."""
        found, _ = await read_existing(self.client, [(resource_type, resource_id)])
        copy = found.get((resource_type, resource_id))
        if copy is None:
            log.warning("reading back a written %s failed", resource_type)
        return copy

    # -- per case ---------------------------------------------------------------------------------

    async def push_case(self, case: Case) -> PushReport:
        report = PushReport(cases=1)
        try:
            await _CasePush(self, case, report).run()
        except _CaseFailed as failed:
            report.failed = 1
            report.failures.append(
                CaseFailure(case_id=case.id, reason=failed.reason, permanent=failed.permanent, server=failed.server)
            )
        except MappingError as exc:
            report.failed = 1
            reason = f"cannot map the case: {type(exc).__name__}"
            report.failures.append(CaseFailure(case_id=case.id, reason=reason, permanent=True))
        self.saved_limit = save_transaction_limit(self.store, self.client, self.saved_limit)
        return report


class _CasePush:
    """The rounds of one case's push."""

    def __init__(self, run: _Run, case: Case, report: PushReport) -> None:
        self.ctx, self.case, self.report = run, case, report
        ledger = run.ledgers.get(case.id, {})
        self.bases: dict[ResourceKey, dict[str, Any]] = {k: e.server_copy for k, e in ledger.items() if e.server_copy}
        for key, _, _ in case_plan(case, self.bases):
            if key not in self.bases and key in run.found:
                self.bases[key] = run.found[key]
                run._record([run._entry(key, case.id, run.found[key])])
        self.keep: dict[ResourceKey, tuple[dict[str, Any], frozenset[str]]] = {}
        self.outcome: dict[ResourceKey, str] = {}
        self.conflict_retried = False

    async def run(self) -> None:
        last: _CaseFailed | None = None
        for _ in range(MAX_ROUNDS):
            writes, planned = self.writes()
            if not writes:
                self.count(planned)
                return
            try:
                await self.send(writes)
            except _CaseFailed as failed:
                if failed.permanent:
                    raise
                last = failed
        raise last or _CaseFailed("the server copy kept changing; will retry", permanent=False)

    def count(self, planned: Iterable[ResourceKey]) -> None:
        for key in planned:
            kind = self.outcome.get(key, "unchanged")
            setattr(self.report, kind, getattr(self.report, kind) + 1)

    # -- what to send -----------------------------------------------------------------------------

    def writes(self) -> tuple[list[_Write], list[ResourceKey]]:
        run, identity = self.ctx, self.ctx.identity
        stable = {
            key: identity.stable_id(key)
            for key, _, _ in case_plan(self.case, self.bases)
            if key not in self.bases and not identity.by_identifier(key.type)
        }
        resources = case_to_resources(self.case, run.version, run.system, self.bases, server_ids=stable)
        patient = self.case.patient.id
        server_patient = run.patients.get(patient)
        if server_patient is None:
            raise _CaseFailed("the patient could not be found or created on the server; will retry", permanent=False)
        moved = {f"Patient/{patient}": f"Patient/{server_patient}"} if server_patient != patient else {}
        for rtype, rid in case_parties(self.case):
            server_id = run.parties.get((rtype, rid))
            if server_id is None:
                raise _CaseFailed(f"a {rtype} the case names could not be found or created on the server; will retry", permanent=False)
            if server_id != rid:
                moved[f"{rtype}/{rid}"] = f"{rtype}/{server_id}"
        writes: list[_Write] = []
        refs: References | None = None
        for key, resource in resources.items():
            if moved:
                rewrite_references(resource, moved)
            if key in self.keep:
                keep_server(resource, *self.keep[key])
            base = self.bases.get(key)
            if base is not None:
                if is_foreign(base, run.system):  # another system's record: see _foreign
                    refs = refs or self.references()
                    update = foreign_update(base, resource, check_version(run.version), run.system, refs)
                    if update is None:
                        continue
                    resource = update
                if content_hash(resource) == content_hash(base):
                    continue
                version = _version(base)
                entry = BundleEntry(
                    "PUT", f"{key.type}/{base['id']}", resource, if_match=f'W/"{version}"' if version else None
                )
                writes.append(_Write(key, entry, "update"))
            elif key in stable:
                if key not in run.absent:
                    raise _CaseFailed(f"could not look up {key.type} on the server; will retry", permanent=False)
                writes.append(_Write(key, BundleEntry("PUT", f"{key.type}/{stable[key]}", resource), "create"))
            else:
                resource.pop("id", None)
                full_url = "urn:uuid:" + identity.stable_id(key)
                criteria = if_none_exist(run.system, key.value)
                writes.append(_Write(key, BundleEntry("POST", key.type, resource, full_url, criteria), "create"))
        if any(w.entry.method == "POST" for w in writes):
            # An update naming a resource still to be created waits a round: once the create has
            # answered, the update is built with the real id. (A base found on the server rather
            # than in the ledger names that resource by id already; mixing in a urn:uuid for it
            # would write the same link twice.)
            writes = [w for w in writes if w.kind == "create" or b"urn:uuid:" not in orjson.dumps(w.resource)]
        return writes, list(resources)

    def references(self) -> References:
        """References that resolve the case's resources by the server ids of their copies."""
        ids = {k: str(b["id"]) for k, b in self.bases.items() if isinstance(b.get("id"), str)}
        refs = References(self.ctx.system, ids)
        refs.know_all(k for k, _, _ in case_plan(self.case, self.bases))
        return refs

    def provenances(self, writes: list[_Write]) -> list[BundleEntry]:
        run = self.ctx
        if run.device_ref is None:
            return []
        out = []
        for kind, activity in (("create", "CREATE"), ("update", "UPDATE")):
            chosen = [w for w in writes if w.kind == kind]
            if not chosen:
                continue
            pid = provenance_id(self.case.id, activity, [(w.key, content_hash(w.resource)) for w in chosen])
            resource = provenance_resource(
                self.case, activity, [w.target for w in chosen], run.device_ref, resource_id=pid
            )
            out.append(BundleEntry("PUT", f"Provenance/{pid}", resource))
        return out

    # -- sending and recording --------------------------------------------------------------------

    async def send(self, writes: list[_Write]) -> None:
        provenance = self.provenances(writes)
        try:
            result = await self.ctx.client.transaction([w.entry for w in writes] + provenance)
        except VersionConflict:
            await self.refresh(writes)
            return
        except _RETRYABLE as exc:
            why = refusal(exc, self.case, self.sent(writes))
            text = refusal_text(exc, why) if why else _reason(exc)
            raise _CaseFailed(f"{text}; will retry", permanent=False, server=why) from None
        except FhirError as exc:
            why = refusal(exc, self.case, self.sent(writes))
            text = refusal_text(exc, why)
            raise _CaseFailed(f"the server refused the case: {text}", permanent=True, server=why) from None
        results = result.entries
        recorded: list[LedgerEntry] = []
        stale: list[_Write] = []
        retry: _CaseFailed | None = None
        for write, outcome in zip(writes, results, strict=False):
            if outcome.ok:
                copy = await self.copy_of(write, outcome)
                if copy is None:
                    retry = _CaseFailed(f"could not read back a written {write.key.type}; will retry", permanent=False)
                    continue
                recorded.append(self.ctx._entry(write.key, self.case.id, copy))
                self.bases[write.key] = copy
                self.keep.pop(write.key, None)
                if outcome.created:
                    self.outcome[write.key] = "created"
                elif write.kind == "update":
                    self.outcome.setdefault(write.key, "updated")
            elif isinstance(outcome.error, VersionConflict):
                stale.append(write)
            elif outcome.status is None or isinstance(outcome.error, _RETRYABLE):
                retry = _CaseFailed(f"{write.key.type} not written (transient); will retry", permanent=False)
            else:
                why = refusal(outcome.error, self.case, self.sent(writes)) if outcome.error else None
                reason = refusal_text(outcome.error, why) if outcome.error else f"HTTP {outcome.status}"
                self.ctx._record(recorded)
                raise _CaseFailed(f"the server refused a {write.key.type}: {reason}", permanent=True, server=why)
        self.report.provenances += sum(1 for r in results[len(writes) :] if r.ok)
        self.ctx._record(recorded)
        if stale:
            await self.refresh(stale)
        if retry is not None:
            raise retry

    def sent(self, writes: list[_Write]) -> list[dict[str, Any]]:
        """What this round sent of the case: the values a server's message must not echo."""
        return [w.resource for w in writes]

    async def copy_of(self, write: _Write, outcome: WriteResult) -> dict[str, Any] | None:
        """The server copy an entry left: the answer's body, else read back by id."""
        if outcome.resource is not None and outcome.resource.get("id"):
            return outcome.resource
        if outcome.id:
            return await self.ctx._read(outcome.resource_type or write.key.type, outcome.id)
        return None

    async def refresh(self, writes: list[_Write]) -> None:
        """After a version conflict: re-read what moved on, merge what the adapter changed, or record a conflict."""
        if self.conflict_retried:
            raise _CaseFailed("version conflict again after merging; will retry", permanent=False)
        self.conflict_retried = True
        updates = [w for w in writes if w.kind == "update"]
        targets = {w.key: (w.key.type, str(self.bases[w.key]["id"])) for w in updates}
        found, missing = await read_existing(self.ctx.client, targets.values())
        if missing:
            kinds = ", ".join(sorted({t for t, _ in missing}))
            raise _CaseFailed(f"resources of the case were deleted on the server: {kinds}", permanent=True)
        if len(found) < len(targets):
            raise _CaseFailed("could not re-read the server copies; will retry", permanent=False)
        copies = [found[targets[w.key]] for w in updates]
        clashes: list[tuple[_Write, dict[str, Any], frozenset[str]]] = []
        seen: list[LedgerEntry] = []
        for write, current in zip(updates, copies, strict=True):
            old = self.bases[write.key]
            if _version(current) == _version(old):
                continue
            three_way = compare(old, write.resource, current)
            if three_way.clash:
                clashes.append((write, current, three_way.clash))
                continue
            self.bases[write.key] = current
            self.keep[write.key] = (current, three_way.server_only)
            seen.append(self.ctx._entry(write.key, self.case.id, current))
        self.ctx._record(seen)
        if clashes:
            with self.ctx.store.session() as s:
                for write, current, fields in clashes:
                    add_conflict(
                        s,
                        self.case.id,
                        write.key.type,
                        write.key.value,
                        local=write.resource,
                        server=current,
                        fields=sorted(fields),
                    )
            self.report.conflicts += len(clashes)
            names = ", ".join(f"{w.key.type} ({', '.join(sorted(f))})" for w, _, f in clashes)
            raise _CaseFailed(f"conflict with a server edit: {names}", permanent=True)


# -- the outbox loop ------------------------------------------------------------------------------


async def push_pending(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    concurrency: int | None = None,
    worker_id: str | None = None,
    on_case: Callable[[str, bool], None] | None = None,
    first: Callable[[], None] | None = None,
) -> PushReport:
    """Push every due outbox row to ``client``'s server; returns what happened.

    Claims rows in batches of ``settings.push_batch_size`` under a lease of
    ``settings.push_lease_seconds``, pushes up to ``concurrency`` cases at once, and settles each row
    only after its ledger entries are written: done, pending again (transient failures, retried by a
    later push) or failed (conflicts and refusals, for a person). A row is tried at most once per
    call. ``on_case(case_id, ok)`` is called as each case finishes (for progress bars). ``first`` is
    store work (e.g. saving the cases to push) done before the first claim, while the first requests
    to the server are out.

    Leases (``_leases``): every claim first takes over the rows of dead processes of this host, and
    the leases of all claimed, unsettled rows are renewed in the background until they are settled.
    """
    keeper = LeaseKeeper(store, settings.push_lease_seconds)
    keeper.start()
    try:
        return await _push_pending(store, client, settings, keeper, concurrency, worker_id, on_case, first)
    finally:
        await keeper.stop()


async def _push_pending(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    keeper: LeaseKeeper,
    concurrency: int | None,
    worker_id: str | None,
    on_case: Callable[[str, bool], None] | None,
    first: Callable[[], None] | None,
) -> PushReport:
    worker = worker_id or default_worker_id()
    limit = asyncio.Semaphore(concurrency or settings.push_concurrency)
    run = _Run(store, client, settings)
    report = PushReport()
    tried: set[int] = set()
    claim = _Claimer(store, worker, settings, tried)

    def first_claim() -> list[tuple[OutboxItem, Case | None]]:
        if first is not None:
            first()
        return claim()

    # The first claim (store work, with ``first``) runs while the event loop waits for the server's
    # first answers, as does loading the code tables (once, on first mapping): neither is in the
    # path of the first case.
    _, _, fresh = await asyncio.gather(run.start(), asyncio.to_thread(terminology), _off_loop(store, first_claim))
    size = concurrency or settings.push_concurrency
    batches: list[asyncio.Future[list[None]]] = []
    while fresh:
        keeper.hold(item for item, _ in fresh)
        cases = {item.id: case for item, case in fresh}
        all_started = asyncio.Event()
        waiting = [len(fresh)]

        async def one(
            item: OutboxItem,
            ready: asyncio.Future[None],
            cases: dict[int, Case | None] = cases,
            all_started: asyncio.Event = all_started,
            waiting: list[int] = waiting,
        ) -> None:
            await ready
            case = cases[item.id]
            async with limit:
                waiting[0] -= 1
                if not waiting[0]:
                    all_started.set()
                if keeper.lost(item):  # another worker has it now: it pushes the case
                    keeper.let_go(item)
                    return
                if case is None:
                    outcome = PushReport(cases=1, failed=1)
                    outcome.failures.append(CaseFailure(case_id=item.case_id, reason="case not in the store", permanent=True))
                else:
                    outcome = await run.push_case(case)
            _settle(store, item, outcome)
            keeper.let_go(item)
            report.add(outcome)
            if on_case is not None:
                on_case(item.case_id, outcome.ok)

        # The first cases go out as soon as they are prepared; the rest are prepared meanwhile, so
        # the server is not left idle while a whole batch's lookups come back.
        head, tail = _split([item for item, _ in fresh], limit_size=size)
        head_ready = asyncio.ensure_future(run.prepare_quietly([c for i in head if (c := cases[i.id])]))
        tail_ready = asyncio.ensure_future(_after(head_ready, run.prepare_quietly([c for i in tail if (c := cases[i.id])])))
        batch = asyncio.gather(
            *(one(item, head_ready) for item in head), *(one(item, tail_ready) for item in tail), tail_ready
        )
        batches.append(batch)
        # Once the batch's last cases hold their slots, the next batch is claimed and prepared while
        # they finish, rather than after: the server always has a case to work on.
        started = asyncio.ensure_future(all_started.wait())
        await asyncio.wait({batch, started}, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        started.cancel()
        if batch.done() and batch.exception() is not None:
            break
        fresh = await _off_loop(store, claim)
    await asyncio.gather(*batches)
    return report


class _Claimer:
    """Claims the next batch of due rows, each at most once per push call (a row put back pending by
    a transient failure waits for the next call rather than being retried in a tight loop)."""

    def __init__(self, store: Store, worker: str, settings: Settings, tried: set[int]) -> None:
        self.store, self.worker, self.settings, self.tried = store, worker, settings, tried
        self.holder = LeaseHolder.current()

    def __call__(self) -> list[tuple[OutboxItem, Case | None]]:
        """The fresh rows claimed, each with its case as the store holds it (None if it is gone)."""
        with self.store.session() as s:
            take_over(s, self.holder)
            claimed = claim_outbox(
                s,
                self.worker,
                limit=self.settings.push_batch_size,
                lease_seconds=self.settings.push_lease_seconds,
                holder=self.holder,
            )
            for item in claimed:
                if item.id in self.tried:
                    release(s, item)
        fresh = [item for item in claimed if item.id not in self.tried]
        self.tried.update(item.id for item in fresh)
        if not fresh:
            return []
        with self.store.session(read_only=True) as s:
            return [(item, get_case(s, item.case_id)) for item in fresh]


async def _off_loop(store: Store, work: Callable[[], _Result]) -> _Result:
    """Run store work in a thread, so network requests already sent progress meanwhile — unless the
    store is one shared connection (in-memory SQLite), which two threads must not use at once."""
    if not store.threadsafe:
        return work()
    return await asyncio.to_thread(work)


def _split(items: list[OutboxItem], *, limit_size: int) -> tuple[list[OutboxItem], list[OutboxItem]]:
    """The first cases to push at once, and the rest (none when the batch is small)."""
    if len(items) <= 2 * limit_size:
        return items, []
    return items[:limit_size], items[limit_size:]


async def _after(first: asyncio.Future[None], then: Awaitable[None]) -> None:
    await first
    await then


def _settle(store: Store, item: OutboxItem, outcome: PushReport) -> None:
    try:
        with store.session() as s:
            if outcome.ok:
                complete(s, item)
            else:
                failure = outcome.failures[0]
                fail(s, item, failure.reason, retry=not failure.permanent)
    except LeaseLost:
        log.warning("outbox item %s was taken over by another worker before it was settled", item.id)


async def push_cases(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    cases: Iterable[Case],
    **options: Any,
) -> PushReport:
    """Save ``cases`` to the store (queueing each, even if unchanged), then push the outbox.

    The saving overlaps the first requests to the server (capabilities, the adapter's Device).
    """
    cases = list(cases)

    def save() -> None:
        with store.session() as s:
            for case in cases:
                save_case(s, case, enqueue=False)
                enqueue(s, case.id)

    return await push_pending(store, client, settings, first=save, **options)


def enqueue_unpushed(store: Store, server_base: str) -> int:
    """Queue every case whose EpisodeOfCare the ledger does not know on ``server_base``; returns how many."""
    with store.session() as s:
        pushed = {e.key for e in list_ledger(s, server_base) if e.resource_type == "EpisodeOfCare"}
        todo = [c.id for c in list_cases(s) if c.id not in pushed]
        for case_id in todo:
            enqueue(s, case_id)
    return len(todo)
