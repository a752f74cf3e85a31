"""The incremental pull: what changed on a server since last time, brought into the store's cases.

Per resource type, in an order that lets a new case arrive before its parts (EpisodeOfCare first):

1. **Search** ``identifier=<system>|`` (the adapter's resources) with ``_lastUpdated=gt<watermark −
   overlap>``, page by page (the client streams: memory stays one page). A parameter is sent only
   when the server's CapabilityStatement does not rule it out, and what comes back is filtered
   again here, because tolerant servers ignore parameters they do not know (sekmet does, for Goal
   and CareTeam). With ``patient`` the search is instead everything of that patient, ours or not.
   The next type's search starts while this one is taken in, its first pages read ahead
   (``_ahead.ReadAhead``): some servers answer each page only after a pause of their own.
2. **Dedupe** each page by versionId against the ledger, in one query for the page (the overlap and
   re-stamped copies come back as "unchanged"), without the entries' server copies (the merge reads
   those, once per case).
3. **Check** what is newer against the release's strict model, and ours against the mapping (in a
   worker process once the pull proves large, see ``_checks``, the page after the one being placed):
   a resource that fails is **quarantined** with the reason, and the pull goes on. The rest is
   **placed** in a case (see ``_membership``) and **held** in a buffer, by case.
4. **Merge** at the end: each case the run took something in for is read once, with its ledger
   copies and outbox rows (one query each for ``MERGE_CASES`` cases); the case as the server had it
   (ledger copies), as it has it now (plus the new copies) and the local case go through a three-way
   merge (``_conflicts``; the two reads share what the copies they both hold say, ``mapping.CaseReads``),
   and the case is saved once, without queueing a push (nothing local
   changed); the new copies go into the ledger. When the buffer holds ``flush_size`` resources, or
   ``flush_bytes`` of them as JSON (whichever comes first: sizes differ tenfold between types), it
   goes to a scratch file (``_spill``), not into the store: a pull goes type by type, so merging
   then would read, merge and save every case once per type it has resources of (nine times on a
   first pull), where once does. Resources taken in earlier in the run place those that refer to
   them from the buffer or the file, and the episodes taken in place them by patient or by
   ``<case>-careplan`` as if their cases were stored (``RunEpisodes``: each case's patient and
   whether its episode says it is open, in place of what the store says): a case new to the store
   is saved once, with all its parts. A case that does not read for want of a later type (a
   rejected ServiceRequest needs its Task) at a merge before the last (a failed type) is taken in
   without the resources in the way; those are tried again at each merge that brings the case
   something new, and quarantined if the last one still cannot read them. A resource that would
   make its case break a
   rule of what can be true (``fhir_cm.domain.Plausibility``: a contact in the future, overlapping
   inpatient stays, an open episode that ended) is treated the same way: the case is taken in
   without it, and it is quarantined with the rule it breaks (field and rule, no data) rather than
   dropped. Breaches the local case already had are not held against the server. Memory stays
   bounded by the buffer (``flush_bytes`` of JSON at most), the pages read ahead and the ledger
   copies of ``MERGE_CASES`` cases, whatever the number pulled: the run's episodes and the ids that
   what it took in refers to (of types still to be pulled, for placing by reference) are kept in the
   scratch file too, beside the buffers it spilled; it grows with the pull and is removed at its end.
   Clashes become conflicts only when a local change may still be waiting to be pushed: an outbox
   row pending or in flight, or one that **failed for good while the case still differs from the
   server's last copy**. A failed row whose change is no longer in the case (the server's copy
   won, or a person resolved it) stays failed, for people to see, but protects nothing; a later
   successful push of the case settles it (the store's ``mark_pushed``).
5. The **watermark** of a type moves to the latest ``meta.lastUpdated`` seen once the type is done,
   in the transaction of the next merge: never ahead of the resources it covers, so a pull killed
   at any point starts again from where the store is (what it saw twice is "unchanged"; what was
   only in the scratch file is fetched again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


from .. import decimals
from ..checks import MAPPING_PROBLEM, problem_of
from ..config import Settings
from ..fhir import (
    AsyncFhirClient,
    Capabilities,
    FhirError,
    InvalidRequest,
    UnsupportedByServer,
)
from ..mapping import (
    ELSEWHERE,
    FhirVersion,
    MappingError,
    ResourceKey,
    foreign_reference,
    resource_key,
    resources_to_case,
)
from ..store import (
    LedgerEntry,
    Store,
    content_hash,
    find_ledger,
    get_watermark,
    ledger_holds_any,
)
from ._ahead import ReadAhead
from ._checks import Checker
from ._report import PullReport
from ._spill import Spill
from ._off_loop import off_loop
from ._pull_merge import Merging
from ._pull_read import CaseReader
from ._intake import (
    instant,
    is_newer,
    last_updated_of,
    later_mark,
    server_fhir_version,
    version_of,
)
from ._membership import RunEpisodes, case_of, case_references, ledger_lookup, own_bases, patient_of

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
#: How many newer resources the pull holds in memory; beyond, they wait in the scratch file until the
#: cases are merged (a case whose parts arrive over many pages and types is merged once, at the end).
FLUSH_SIZE = 2000
#: The same bound in bytes (the JSON of the held resources): a pull's types differ in size — an
#: EpisodeOfCare or a CareTeam takes three times the memory of a Communication — so a buffer bounded
#: by count alone holds more as a pull reaches types with many resources each, i.e. as it grows.
FLUSH_BYTES = 2_000_000


class _Puller(Merging):
    def __init__(
        self,
        store: Store,
        client: AsyncFhirClient,
        settings: Settings,
        version: FhirVersion,
        flush_size: int,
        flush_bytes: int = FLUSH_BYTES,
    ) -> None:
        self.store, self.client, self.version = store, client, version
        self.system = settings.identifier_system
        self.base = client.base_url
        #: The bases the server names itself by: ours, and its entries' fullUrls' (a server behind a
        #: proxy writes its inner address there, and in the references it makes absolute).
        self.own_bases: set[str] = {self.base}
        self.flush_size, self.flush_bytes = flush_size, flush_bytes
        self.reader = CaseReader(version, self.system, settings.plausibility(dt.date.today()), self.own_bases)
        self.checker = Checker(version, self.system, CASE_RESOURCE_TYPES)
        # What was taken in beyond ``flush_size``: on disk until the cases are merged.
        self.spill = Spill()
        self.report = PullReport(server=self.base)
        self.new: set[str] = set()
        self.updated: set[str] = set()
        # The newer copies taken in since the last flush, by case (a later version of a resource
        # replaces an earlier one); ``held`` counts them and ``held_bytes`` their JSON, and reaching
        # ``flush_size`` or ``flush_bytes`` spills them.
        self.buffer: dict[str, dict[ResourceKey, Mapping[str, Any]]] = {}
        self.held = self.held_bytes = 0
        # The cases whose episode this run took in (new or changed): until the merge at the end, they
        # place other types' resources by patient or by a ``<case>-careplan`` key as if stored.
        self.episodes = RunEpisodes(self.spill.connection)
        # Watermarks of the types done, written in the transaction of the flush that stores the last
        # of their resources (never before: a crash in between leaves the old watermark).
        self.marks: dict[str, str] = {}
        # Resources that kept their case from reading (a rejected ServiceRequest before the Task with
        # its reason), by case; the rest of the case is taken in without them. They are tried again
        # at each flush that brings their case something new (the Task), and at the last one.
        self.deferred: dict[str, list[tuple[ResourceKey, Mapping[str, Any]]]] = {}
        # (type, server id) of the buffered and deferred resources, which the ledger does not know yet.
        self.placed: dict[tuple[str, str], str] = {}
        # What the resources taken in this run refer to (a CarePlan's Conditions, Goals and
        # ServiceRequests), by case: it places the parts of a case no open case of the patient
        # would (a closed case, on a first pull). Ids only, and only of types still to be pulled;
        # dropped once the resource referred to is taken in, or its type is done. When the buffer
        # spills, they go to the scratch file too (``Spill.add_references``).
        self.referenced: dict[tuple[str, str], str] = {}
        self.to_pull: set[str] = set()

    # -- searching ------------------------------------------------------------------------------

    def params(self, caps: Capabilities | None, rtype: str, wanted: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The parameters the server does not rule out (the rest is filtered here after the fact)."""
        if caps is None:
            return wanted
        unknown = set(caps.unknown_search_params(rtype, (n for n, _ in wanted)))
        return [(n, v) for n, v in wanted if n not in unknown]

    def search(
        self, caps: Capabilities | None, rtype: str, since: dt.datetime | None, patient: str | None
    ) -> tuple[ReadAhead, dt.datetime | None]:
        """Start ``rtype``'s search, its first pages read ahead from now (``ReadAhead``); with the
        time it starts from (the watermark less the overlap, or ``since``)."""
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
        return ReadAhead(search.count(PAGE_SIZE).until_total().prefetch().pages()), start

    async def pull_type(self, rtype: str, pages: ReadAhead, start: dt.datetime | None, patient: str | None) -> None:
        """Take in the pages of ``rtype``'s search (``search``)."""
        latest: str | None = None
        # The next page is asked for before this one is worked on, and the work runs in a thread:
        # the server prepares the next page while this one is placed and merged, and (in a large
        # pull) the check worker checks the page after it.
        waiting: tuple[list[dict[str, Any]], asyncio.Future[list[str | None]] | None] | None = None
        try:
            async for page in pages:
                batch = [r for r in page.matches if r.get("resourceType") == rtype and self._wanted(r, patient, start)]
                self.own_bases.update(own_bases(page.entries))
                self.report.fetched += len(batch)
                now = dt.datetime.now(dt.UTC)
                for r in batch:
                    latest = later_mark(latest, last_updated_of(r), now=now)
                if not batch:
                    continue
                checking = self.checker.submit(batch)
                if waiting is not None:
                    await self._work(rtype, *waiting, ours_only=patient is None)
                waiting = (batch, checking)
        except FhirError:  # the page fetched last is taken in even when the next one failed
            if waiting is not None:
                await self._work(rtype, *waiting, ours_only=patient is None)
            raise
        if waiting is not None:
            await self._work(rtype, *waiting, ours_only=patient is None)
        if latest is not None and patient is None:
            self.marks[rtype] = latest

    async def _work(
        self,
        rtype: str,
        batch: list[dict[str, Any]],
        checking: asyncio.Future[list[str | None]] | None,
        *,
        ours_only: bool,
    ) -> None:
        problems = await self.checker.problems(checking)
        # A pull stopped meanwhile (SIGTERM, Ctrl-C, a worker told to stop) waits for the page's
        # thread before it closes the scratch file the page writes to (it had made a new one).
        await off_loop(self.store, functools.partial(self.work_on, rtype, batch, ours_only, problems), whole=True)

    def work_on(
        self, rtype: str, batch: list[dict[str, Any]], ours_only: bool, problems: Sequence[str | None] | None = None
    ) -> None:
        """Take one page in, and move the buffer to the scratch file after when it is full.
        ``problems``: the page's checks, if the check worker made them."""
        self.take(rtype, batch, ours_only=ours_only, problems=problems)
        if self.held >= self.flush_size or self.held_bytes >= self.flush_bytes:
            self.spill_buffer()

    def spill_buffer(self) -> None:
        """Move the buffer to the scratch file: its cases are merged once, at the next flush."""
        self.spill.add(self.buffer)
        self.spill.add_references(self.referenced)
        self.buffer, self.held, self.held_bytes, self.referenced = {}, 0, 0, {}
        self.placed = self._deferred_placed()  # the spilled ones are looked up in the file

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
        identifiers = resource.get("identifier")
        return isinstance(identifiers, list) and any(
            isinstance(i, Mapping) and i.get("system") == self.system for i in identifiers
        )

    # -- taking a page in -------------------------------------------------------------------------

    def take(
        self,
        rtype: str,
        resources: Sequence[Mapping[str, Any]],
        *,
        ours_only: bool,
        problems: Sequence[str | None] | None = None,
    ) -> None:
        """Check (unless ``problems`` has the checks already), dedupe and place one page; what is
        newer goes into the buffer (merged at the next flush)."""
        with self.store.session() as session:
            keyed: list[tuple[ResourceKey, Mapping[str, Any]]] = []
            checks: list[str | None] = []  # the worker's answers for ``keyed``, when it made them
            for n, resource in enumerate(resources):
                key = resource_key(resource, self.system)
                if key is None:
                    self._quarantine(session, resource, "resource has no id and no business identifier")
                else:
                    keyed.append((key, resource))
                    if problems is not None:
                        checks.append(problems[n])
            # A first pull from a server finds nothing of it in the ledger until it merges, at its end:
            # one query says so, rather than a few per page.
            known = ledger_holds_any(session, self.base)
            entries = (
                find_ledger(
                    session,
                    self.base,
                    rtype,
                    keys=(k.value for k, _ in keyed),
                    server_ids=(i for _, r in keyed if isinstance(i := r.get("id"), str)),
                    copies=False,  # deduping and placing need none; the merge reads the case's
                )
                if known
                else []
            )
            by_key = {e.key: e for e in entries}
            by_id = {e.server_id: e for e in entries if e.server_id}
            refs = [list(case_references(r)) for _, r in keyed]  # once per resource, for all three uses
            lookup = (
                ledger_lookup(session, self.base, zip((r for _, r in keyed), refs, strict=True))
                if known
                else _nothing_known
            )
            referenced = self.referenced
            if self.spill.references:  # noted earlier in the run: the first case noted stands
                spilled = self.spill.referenced_cases(
                    (k.type, i) for k, r in keyed if isinstance(i := r.get("id"), str)
                )
                referenced = {**self.referenced, **spilled}
            placed = self.placed
            if self.spill:  # resources taken in earlier in the run and spilled place those that refer to them
                placed = {**self.spill.cases_of(t for targets in refs for t in targets), **self.placed}
            restamped: list[LedgerEntry] = []
            for n, ((key, resource), references) in enumerate(zip(keyed, refs, strict=True)):
                held = by_key.get(key.value) or by_id.get(resource.get("id"))  # type: ignore[arg-type]
                if held is not None and not is_newer(version_of(resource), held.version_id):
                    self.report.unchanged += 1  # seen before (the overlap): checked then
                    continue
                problem = checks[n] if problems is not None else problem_of(resource, self.version, self.system)
                if problem is None and (elsewhere := foreign_reference(resource, self.own_bases)) is not None:
                    problem = f"{MAPPING_PROBLEM}{ELSEWHERE}{elsewhere}"
                if problem is not None:
                    if ours_only or self._ours(resource) or not problem.startswith(MAPPING_PROBLEM):
                        self._quarantine(session, resource, problem)
                    else:
                        self.report.ignored += 1
                    continue
                if held is not None and held.content_hash == content_hash(resource):
                    # Re-stamped, not changed (e.g. the echo of our own push): note the version only.
                    restamped.append(
                        held.model_copy(
                            update={
                                "version_id": version_of(resource),
                                "server_copy": dict(resource),
                                "last_updated": last_updated_of(resource),
                                "synced_at": None,
                            }
                        )
                    )
                    self.report.unchanged += 1
                    continue
                case_id = case_of(
                    session,
                    self.base,
                    resource,
                    key,
                    placed,
                    referenced,
                    known=held,
                    by_server_id=lookup,
                    references=references,
                    episodes=self.episodes,
                )
                if case_id is None:
                    self.report.unplaced += 1
                    continue
                self._hold(case_id, key, resource, references, stored=held is not None)
            self._record(session, restamped)

    def _hold(
        self,
        case_id: str,
        key: ResourceKey,
        resource: Mapping[str, Any],
        references: Sequence[tuple[str, str]],
        *,
        stored: bool,
    ) -> None:
        items = self.buffer.setdefault(case_id, {})
        earlier = items.get(key)
        if earlier is not None and not is_newer(version_of(resource), version_of(earlier)):
            self.report.unchanged += 1
            return
        if earlier is None:
            self.held += 1
        self.held_bytes += len(decimals.dumps(resource))  # a later copy counts again: spilled sooner, never later
        items[key] = resource
        if key.type == "EpisodeOfCare":
            self._note_episode(case_id, resource)
        if isinstance(resource.get("id"), str):
            self.placed[(key.type, resource["id"])] = case_id
            self.referenced.pop((key.type, resource["id"]), None)  # placed now: no longer needed
        for target in references:
            if target[0] in self.to_pull:  # a type already pulled: nothing left for it to place
                self.referenced.setdefault(target, case_id)

    def _note_episode(self, case_id: str, episode: Mapping[str, Any]) -> None:
        """Note the case's patient and status, as its episode alone gives them, for placing the
        run's other resources (see ``RunEpisodes``). An episode that does not read alone places
        nothing by patient; the merge at the end decides what becomes of it."""
        try:
            case = resources_to_case([episode], self.version, self.system)
        except (MappingError, ValueError):
            return
        self.episodes.add(case_id, case.patient.id, case.status)

    def done(self, rtype: str) -> None:
        """Forget the references to ``rtype``: its resources are all in, none is left to place."""
        self.to_pull.discard(rtype)
        self.referenced = {t: c for t, c in self.referenced.items() if t[0] != rtype}


async def pull(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    since: dt.datetime | str | None = None,
    patient: str | None = None,
    types: Iterable[str] = CASE_RESOURCE_TYPES,
    flush_size: int = FLUSH_SIZE,
    flush_bytes: int = FLUSH_BYTES,
) -> PullReport:
    """Pull what changed on the client's server into the store's cases; see the module docstring.

    ``since`` (an aware datetime or a FHIR instant) replaces the stored watermarks for this run.
    ``patient`` pulls everything of the case types about that patient instead (watermarks are
    neither used nor moved: the run covers one patient only). A type the server refuses (e.g. a
    client enforcing a CapabilityStatement that leaves the type out) is skipped and reported;
    other failures of the server raise ``FhirError`` after what was pulled so far is kept.
    ``flush_size`` is how many newer resources are held in memory, ``flush_bytes`` how much of their
    JSON (the rest wait in a scratch file).
    """
    start = instant(since) if isinstance(since, str) else since
    if start is not None and start.tzinfo is None:
        raise ValueError("since needs a time zone (e.g. 2024-05-01T10:00:00Z)")
    if flush_size < 1 or flush_bytes < 1:
        raise ValueError("flush_size and flush_bytes must be at least 1")
    version = await server_fhir_version(client, settings)
    try:
        caps: Capabilities | None = await client.capabilities()
    except FhirError:
        caps = None  # no usable /metadata: send everything and filter here
    puller = _Puller(store, client, settings, version, flush_size, flush_bytes)
    types = list(types)
    puller.to_pull = set(types)
    # Each type's search starts (its first pages read ahead) while the type before is taken in.
    searches = [puller.search(caps, types[0], start, patient)] if types else []
    try:
        for n, rtype in enumerate(types):
            if n + 1 < len(types):
                searches.append(puller.search(caps, types[n + 1], start, patient))
            try:
                await puller.pull_type(rtype, *searches[n], patient)
            except FhirError as exc:
                if not _refused(exc):
                    puller.flush()  # keep what was pulled; the failed type's watermark stays
                    raise
                puller.report.skipped_types[rtype] = str(exc).splitlines()[0][:200]
                log.info("pull skipped %s: %s", rtype, puller.report.skipped_types[rtype])
            puller.done(rtype)
        puller.flush(last=True)
    finally:
        for pages, _ in searches:  # a pull that failed or was cancelled: the searches read ahead stop
            await pages.close()
        puller.checker.close()
        puller.spill.close()
    report = puller.report
    report.new_cases = len(puller.new)
    report.updated_cases = len(puller.updated - puller.new)
    report.cases = sorted(puller.new | puller.updated)
    return report


def _nothing_known(rtype: str, server_id: str) -> LedgerEntry | None:
    """The ledger lookup of a pull from a server the ledger holds nothing of."""
    return None


def _refused(exc: FhirError) -> bool:
    """The server (or the client, from its CapabilityStatement) will not do this search at all."""
    return isinstance(exc, UnsupportedByServer | InvalidRequest)
