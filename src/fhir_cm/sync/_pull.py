"""The incremental pull: what changed on a server since last time, brought into the store's cases.

Per resource type, in an order that lets a new case arrive before its parts (EpisodeOfCare first):

1. **Search** ``identifier=<system>|`` (the adapter's resources) with ``_lastUpdated=gt<watermark −
   overlap>``, page by page (the client streams: memory stays one page). A parameter is sent only
   when the server's CapabilityStatement does not rule it out, and what comes back is filtered
   again here, because tolerant servers ignore parameters they do not know (sekmet does, for Goal
   and CareTeam). With ``patient`` the search is instead everything of that patient, ours or not.
2. **Check** each resource against the release's strict model, and ours against the mapping:
   a resource that fails is **quarantined** with the reason, and the pull goes on.
3. **Dedupe** by versionId against the ledger (the overlap and re-stamped copies come back as
   "unchanged"); a newer version is **placed** in a case (see ``_membership``).
4. **Merge**, per case and page: the case as the server had it (ledger copies), as it has it now
   (plus the new copies) and the local case go through a three-way merge (``_conflicts``); clashes
   become conflicts only when a local change is still waiting to be pushed. The case is saved
   without queueing a push (nothing local changed), the new copies go into the ledger.
5. The **watermark** moves to the latest ``meta.lastUpdated`` seen, once the type is done.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..config import Settings
from ..domain import Case
from ..fhir import (
    AsyncFhirClient,
    Capabilities,
    FhirError,
    InvalidRequest,
    UnsupportedByServer,
)
from ..mapping import (
    FhirVersion,
    MappingError,
    ResourceKey,
    case_to_resources,
    episode_key,
    read_resource,
    resource_key,
    resources_to_case,
)
from ..store import (
    OutboxStatus,
    Store,
    add_quarantine,
    content_hash,
    get_case_record,
    get_ledger,
    get_watermark,
    ledger_by_server_id,
    list_ledger,
    list_outbox,
    put_ledger,
    save_case,
    set_watermark,
)
from ._conflicts import merge_case, record_clashes
from ._intake import (
    fhir_version,
    instant,
    is_newer,
    last_updated_of,
    remember,
    strict_problem,
    version_of,
)
from ._membership import case_of, case_references, patient_of

__all__ = ["CASE_RESOURCE_TYPES", "PULL_OVERLAP", "PullReport", "pull"]

log = logging.getLogger("fhir_cm.sync")

#: The types a case is made of, in the order they are pulled (a case's episode before its parts).
CASE_RESOURCE_TYPES = (
    "EpisodeOfCare",
    "CarePlan",
    "CareTeam",
    "Condition",
    "Goal",
    "ServiceRequest",
    "Task",
    "Communication",
    "Encounter",
)
#: How far behind the watermark each pull starts again: resources committed out of order around the
#: last pull are not missed; what is seen twice is dropped as "unchanged" by versionId.
PULL_OVERLAP = dt.timedelta(seconds=60)
PAGE_SIZE = 200
_LOCAL_WAITING = (OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT, OutboxStatus.FAILED)


class PullReport(BaseModel):
    """What a pull did. Counts are of resources, except ``new_cases``/``updated_cases``."""

    server: str
    fetched: int = 0
    new_cases: int = 0
    updated_cases: int = 0
    unchanged: int = 0
    quarantined: int = 0
    conflicts: int = 0
    unplaced: int = Field(default=0, description="Newer resources that belong to no case in the store.")
    ignored: int = Field(default=0, description="Others' resources that do not read as part of a case.")
    skipped_types: dict[str, str] = Field(default_factory=dict, description="Types not pulled, and why.")
    watermarks: dict[str, str] = Field(default_factory=dict)
    cases: list[str] = Field(default_factory=list, description="Ids of the cases created or updated.")


class _Puller:
    def __init__(self, store: Store, client: AsyncFhirClient, settings: Settings, version: FhirVersion) -> None:
        self.store, self.client, self.version = store, client, version
        self.system = settings.identifier_system
        self.base = client.base_url
        self.report = PullReport(server=self.base)
        self.new: set[str] = set()
        self.updated: set[str] = set()
        # Resources whose case did not read yet (a rejected ServiceRequest before the Task with its
        # reason): tried again once every type is in. Only these are held across pages.
        self.deferred: dict[str, list[tuple[ResourceKey, Mapping[str, Any]]]] = {}
        self.placed: dict[tuple[str, str], str] = {}
        # What the resources taken in this run refer to (a CarePlan's Conditions, Goals and
        # ServiceRequests), by case: it places the parts of a case no open case of the patient
        # would (a closed case, on a first pull). Ids only, a few per resource.
        self.referenced: dict[tuple[str, str], str] = {}

    # -- searching ------------------------------------------------------------------------------

    def params(self, caps: Capabilities | None, rtype: str, wanted: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The parameters the server does not rule out (the rest is filtered here after the fact)."""
        if caps is None:
            return wanted
        unknown = set(caps.unknown_search_params(rtype, (n for n, _ in wanted)))
        return [(n, v) for n, v in wanted if n not in unknown]

    async def pull_type(self, caps: Capabilities | None, rtype: str, since: dt.datetime | None, patient: str | None) -> None:
        wanted: list[tuple[str, str]] = []
        if patient is not None:
            wanted.append(("patient", f"Patient/{patient}"))
        else:
            wanted.append(("identifier", f"{self.system}|"))
        start: dt.datetime | None = since
        if start is None and patient is None:
            mark = self._watermark(rtype)
            start = instant(mark) - PULL_OVERLAP if mark else None
        if start is not None:
            wanted.append(("_lastUpdated", f"gt{start.isoformat()}"))
        search = self.client.search(rtype)
        for name, value in self.params(caps, rtype, wanted):
            search = search.where(name, value)
        latest: str | None = None
        async for page in search.count(PAGE_SIZE).pages():
            batch = [r for r in page.matches if r.get("resourceType") == rtype and self._wanted(r, patient, start)]
            self.report.fetched += len(batch)
            for r in batch:
                seen = last_updated_of(r)
                if seen is not None and (latest is None or instant(seen) > instant(latest)):
                    latest = seen
            if batch:
                with self.store.session() as session:
                    self.take(session, batch, ours_only=patient is None)
        if latest is not None and patient is None:
            with self.store.session() as session:
                self.report.watermarks[rtype] = set_watermark(session, self.base, rtype, latest)

    def _watermark(self, rtype: str) -> str | None:
        with self.store.session(read_only=True) as session:
            return get_watermark(session, self.base, rtype)

    def _wanted(self, resource: Mapping[str, Any], patient: str | None, since: dt.datetime | None) -> bool:
        if patient is not None:
            return patient_of(resource) == patient
        if not self._ours(resource):
            return False
        seen = last_updated_of(resource)
        return since is None or seen is None or instant(seen) > since

    def _ours(self, resource: Mapping[str, Any]) -> bool:
        return any(
            isinstance(i, Mapping) and i.get("system") == self.system for i in resource.get("identifier") or ()
        )

    # -- taking a page in -------------------------------------------------------------------------

    def take(self, session: Session, resources: Iterable[Mapping[str, Any]], *, ours_only: bool) -> None:
        by_case: dict[str, list[tuple[ResourceKey, Mapping[str, Any]]]] = {}
        for resource in resources:
            key = resource_key(resource, self.system)
            if key is None:
                self._quarantine(session, resource, "resource has no id and no business identifier")
                continue
            problem = strict_problem(resource, self.version) or self._mapping_problem(resource)
            if problem is not None:
                if ours_only or self._ours(resource) or not problem.startswith(_MAPPING):
                    self._quarantine(session, resource, problem)
                else:
                    self.report.ignored += 1
                continue
            held = get_ledger(session, self.base, key.type, key.value)
            if held is None and isinstance(resource.get("id"), str):
                held = ledger_by_server_id(session, self.base, key.type, resource["id"])
            if held is not None and not is_newer(version_of(resource), held.version_id):
                self.report.unchanged += 1
                continue
            if held is not None and held.content_hash == content_hash(resource):
                # Re-stamped, not changed (e.g. the echo of our own push): note the version only.
                put_ledger(session, [held.model_copy(update={"version_id": version_of(resource),
                                                             "server_copy": dict(resource),
                                                             "last_updated": last_updated_of(resource),
                                                             "synced_at": None})])
                self.report.unchanged += 1
                continue
            case_id = case_of(session, self.base, resource, key, self.placed, self.referenced)
            if case_id is None:
                self.report.unplaced += 1
                continue
            by_case.setdefault(case_id, []).append((key, resource))
        for case_id, items in by_case.items():
            self.merge(session, case_id, items)

    def _mapping_problem(self, resource: Mapping[str, Any]) -> str | None:
        try:
            read_resource(resource, self.version, self.system)
        except (MappingError, ValueError) as exc:
            return f"{_MAPPING}{str(exc)[:250]}"
        return None

    def _quarantine(self, session: Session, resource: Mapping[str, Any], reason: str) -> None:
        add_quarantine(session, source=self.base, raw=resource, reason=reason)
        self.report.quarantined += 1
        log.warning("quarantined a %s from %s: %s", resource.get("resourceType"), self.base, reason)

    def merge(
        self, session: Session, case_id: str, items: list[tuple[ResourceKey, Mapping[str, Any]]], *, last: bool = False
    ) -> None:
        """Bring one case's newly pulled resources into it (see the module docstring, step 4)."""
        record = get_case_record(session, case_id)
        local = record.case if record is not None else None
        held = {
            ResourceKey(e.resource_type, e.key): e.server_copy
            for e in list_ledger(session, self.base, case_id=case_id)
            if e.server_copy is not None
        }
        now = {**held, **{k: r for k, r in items}}
        try:
            server = self._read(now, local)
        except MappingError:
            if not last:
                self.deferred.setdefault(case_id, []).extend(items)
                self.placed.update({(k.type, str(r.get("id"))): case_id for k, r in items})
                return
            items = self._isolate(session, held, local, items)
            if not items:
                return
            server = self._read({**held, **dict(items)}, local)
        if record is None:
            save_case(session, server, enqueue=False)
            self.new.add(case_id)
        else:
            local = record.case
            try:
                base = self._read(held, local) if held else None
            except MappingError:
                base = None
            waiting = any(list_outbox(session, status=s, case_id=case_id, limit=1) for s in _LOCAL_WAITING)
            outcome = merge_case(base, local, server, detect_clashes=waiting)
            if save_case(session, outcome.case, enqueue=False) != record.revision:
                self.updated.add(case_id)
            self.report.conflicts += len(record_clashes(session, case_id, outcome.clashes))
        for key, resource in items:
            remember(session, self.base, case_id, key, resource, self.version)
            for target in case_references(resource):
                self.referenced.setdefault(target, case_id)

    def finish(self) -> None:
        """Try the deferred resources again, now that every type is in; what still does not read is quarantined."""
        deferred, self.deferred = self.deferred, {}
        for case_id, items in deferred.items():
            latest = {k: r for k, r in items}  # a later copy of the same resource wins
            with self.store.session() as session:
                self.merge(session, case_id, list(latest.items()), last=True)

    def _isolate(
        self, session: Session, held: Mapping[ResourceKey, Mapping[str, Any]], local: Case | None,
        items: list[tuple[ResourceKey, Mapping[str, Any]]],
    ) -> list[tuple[ResourceKey, Mapping[str, Any]]]:
        """Quarantine the resources that keep the case from reading; return the others.

        Added one at a time onto what is already accepted, round after round while any is accepted
        (a Task may be what makes its ServiceRequest readable), so one bad resource does not take
        the rest of its case down with it.
        """
        accepted: dict[ResourceKey, Mapping[str, Any]] = dict(held)
        good: list[tuple[ResourceKey, Mapping[str, Any]]] = []
        waiting = list(items)
        problems: dict[ResourceKey, str] = {}
        while waiting:
            left = []
            for key, resource in waiting:
                try:
                    self._read({**accepted, key: resource}, local)
                except MappingError as exc:
                    problems[key] = str(exc)[:250]
                    left.append((key, resource))
                    continue
                accepted[key] = resource
                good.append((key, resource))
            if len(left) == len(waiting):
                break
            waiting = left
        for key, resource in waiting:
            self._quarantine(session, resource, f"{_MAPPING}{problems[key]}")
        return good

    def _read(self, resources: Mapping[ResourceKey, Mapping[str, Any]], local: Case | None) -> Case:
        """The case the resources describe; a case whose episode the server lacks borrows the local one."""
        copies = list(resources.values())
        if local is not None and not any(k.type == "EpisodeOfCare" for k in resources):
            copies.append(case_to_resources(local, self.version, self.system)[episode_key(local)])
        return resources_to_case(copies, self.version, self.system)


_MAPPING = "not readable as case data: "


async def pull(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    since: dt.datetime | str | None = None,
    patient: str | None = None,
    types: Iterable[str] = CASE_RESOURCE_TYPES,
) -> PullReport:
    """Pull what changed on the client's server into the store's cases; see the module docstring.

    ``since`` (an aware datetime or a FHIR instant) replaces the stored watermarks for this run.
    ``patient`` pulls everything of the case types about that patient instead (watermarks are
    neither used nor moved: the run covers one patient only). A type the server refuses (e.g. a
    client enforcing a CapabilityStatement that leaves the type out) is skipped and reported;
    other failures of the server raise ``FhirError`` after what was pulled so far is kept.
    """
    start = instant(since) if isinstance(since, str) else since
    if start is not None and start.tzinfo is None:
        raise ValueError("since needs a time zone (e.g. 2024-05-01T10:00:00Z)")
    version = await fhir_version(client, settings)
    try:
        caps: Capabilities | None = await client.capabilities()
    except FhirError:
        caps = None  # no usable /metadata: send everything and filter here
    puller = _Puller(store, client, settings, version)
    for rtype in types:
        try:
            await puller.pull_type(caps, rtype, start, patient)
        except FhirError as exc:
            if not _refused(exc):
                raise
            puller.report.skipped_types[rtype] = str(exc).splitlines()[0][:200]
            log.info("pull skipped %s: %s", rtype, puller.report.skipped_types[rtype])
    puller.finish()
    report = puller.report
    report.new_cases = len(puller.new)
    report.updated_cases = len(puller.updated - puller.new)
    report.cases = sorted(puller.new | puller.updated)
    return report


def _refused(exc: FhirError) -> bool:
    """The server (or the client, from its CapabilityStatement) will not do this search at all."""
    return isinstance(exc, UnsupportedByServer | InvalidRequest)
