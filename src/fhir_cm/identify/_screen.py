"""Population screening against a FHIR server: read, reduce to facts, rank.

1. **Read** the population's Patients, Encounters, Conditions and screening Observations by Bulk
   Data ``$export`` (system or Group level), or by paged searches where the server offers none
   (``fhir.read_population``). Observations are narrowed to the screening panels with
   ``_typeFilter`` (a hospital's Observations are mostly vital signs and labs).
2. **Reduce** each resource to its fact as it streams in (``_facts.fact_of``) and store the facts in
   batches, keyed by resource: memory holds one batch, whatever the file sizes.
3. **Rank** everyone whose facts the store holds — not only those read this time — in slices of
   patients: each slice's facts are read back, assessed against the rules (``_assess``), patients in
   an open case excluded, and the slice's candidates replaced. A Group's run ranks the Group's
   members (``_group``: and those of the Groups it lists, each Group exported for its own) and no one
   else: their candidates are replaced, everyone else's stay as the last run that ranked them left
   them (a clinic's screening neither lists another clinic's patients nor empties the server's list
   of them). Each candidate row keeps the scope that ranked it (``system`` or ``Group/<id>``).
4. The export's ``transactionTime`` becomes the per-server (and per-Group, each Group listed within
   too) watermark: the next run
   asks only for what changed since (``_since``), and ranks everyone again from the store. The
   watermark's key names the rules' part facts depend on (``facts_digest``): after an edit of it
   the next run reads everything, and says why (``ScreeningReport.reread``).

Nothing half-read is taken as complete: an export that fails (or a file that is not NDJSON) raises
before the watermark moves, and the facts already stored are only ever replaced by newer ones.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import orjson

from pydantic import BaseModel, Field

from ..fhir import (
    AsyncFhirClient,
    BulkExport,
    BulkExportFailed,
    BulkRequest,
    BulkSettings,
    NotNdjson,
    PagedPopulation,
    read_population,
)
from ..mapping import full_url_bases
from ..store import (
    CandidateRecord,
    FactRecord,
    Store,
    get_watermark,
    open_case_patient_ids,
    patient_facts_after,
    patient_facts_of,
    drop_facts,
    forget_candidates_without_facts,
    forget_watermarks,
    put_facts,
    replace_candidates,
    set_watermark,
)
from ._assess import assess
from ._facts import PatientFacts, fact_of, facts_digest, members_of
from ._group import GroupScope, expand_group
from ._rules import EligibilityRules, load_rules

__all__ = ["SCREENED_TYPES", "ScreeningReport", "rank", "screen_files", "screen_population", "watermark_key"]

SCREENED_TYPES = ("Patient", "Encounter", "Condition", "Observation")
#: Facts written per transaction while reading; patients assessed per slice while ranking.
FACT_BATCH = 2000
RANK_SLICE = 1000
#: Member Observations read per ``Observation?_id=`` search (the ids go in the URL: at most 64
#: characters each, 50 keep it under the 8 KB request line servers commonly accept).
MEMBER_BATCH = 50
#: How far below a panel members are read: its answers, or its sections' (PRAPARE's LOINC panel
#: groups its items by section), and one level more for a grouping of sections.
MEMBER_DEPTH = 3
#: What a fact keeps of a resource, by generation: 2 keeps the Patient's birth date (the age rules), 3
#: the visits and screens dated to a month or a year, a Condition's partial onset, and a screen dated
#: by ``effectiveInstant`` (``_facts``), 4 a panel's members (``hasMember``) and the positive answers
#: they hold, 5 none of a resource about another server's patient (an absolute reference at another
#: base, read before as the local patient's), nor another server's member or parent Encounter.
#: The watermark names it, so a store screened by an earlier generation, whose Patient facts hold no
#: birth date, reads everything once — an incremental run would leave every unchanged patient ageless.
FACTS_GENERATION = 5
#: The longest watermark key the store keeps (its key column, as long as a FHIR id).
_KEY_LENGTH = 64
#: What every screening watermark key starts with (then the generation, the rules' digest, the scope;
#: the first generation's keys had neither: ``identify:system``).
_KEY_PREFIX = "identify"


class ScreeningReport(BaseModel):
    """What a screening run read and found."""

    server: str
    scope: str = Field(description="'system', 'Group/<id>' or 'files'.")
    source: Literal["export", "search", "files"]
    since: str | None = Field(default=None, description="Only resources changed after this were read.")
    transaction_time: str = Field(description="The next run's since.")
    read: dict[str, int] = Field(default_factory=dict, description="Resources read, by type.")
    facts: int = Field(default=0, description="Resources that told screening something.")
    deleted: int = Field(default=0, description="Resources the export said were deleted (their facts dropped).")
    patients: int = Field(
        default=0, description="Patients ranked (everyone whose facts the store holds; a Group's members)."
    )
    candidates: int = 0
    excluded_open_case: int = 0
    reread: str | None = Field(
        default=None, description="Why everything was read though the scope had been screened (the rules changed)."
    )
    members: list[str] | None = Field(
        default=None, exclude=True, description="A Group's run: the patients it ranked (its members), else None."
    )
    groups: list[str] | None = Field(
        default=None,
        description="A Group's run: the Groups whose members it ranked — the one asked for, then those it "
        "lists, followed down — else None.",
    )


def watermark_key(group: str | None, rules: EligibilityRules | None = None) -> str:
    """The watermark row of a screening scope (the store keeps one per server and key), of the
    generation of facts (``FACTS_GENERATION``) and of the rules facts depend on (``facts_digest``):
    facts kept otherwise are not continued from. A Group id may take 64 characters, the whole key no
    more: a key that would not fit names the Group by a digest of its id instead (PostgreSQL refused
    the longer one at the end of the run, which was then read again in full each time and failed again)."""
    head = f"{_KEY_PREFIX}.v{FACTS_GENERATION}.{facts_digest(rules or load_rules())}:"
    key = head + (f"Group/{group}" if group else "system")
    if group and len(key) > _KEY_LENGTH:
        key = head + f"Group#{hashlib.sha256(group.encode()).hexdigest()[: _KEY_LENGTH - len(head) - 6]}"
    return key


def _request(rules: EligibilityRules, group: str | None, since: str | None) -> BulkRequest:
    # ``_typeFilter`` is itself a comma-separated list of queries (the IG: each URL-encoded, then
    # joined with commas): the comma between the panels is encoded within the query, or servers read
    # ``code=A,B`` as two queries, the first keeping panel A's screens only.
    panels = "%2C".join(rules.screens.panels)
    return BulkRequest(
        level="group" if group else "system",
        group_id=group,
        types=list(SCREENED_TYPES),
        since=since,
        type_filters=[f"Observation?code={panels}"],
    )


async def screen_population(
    store: Store,
    client: AsyncFhirClient,
    *,
    group: str | None = None,
    since: str | None = None,
    full: bool = False,
    use_export: bool | None = None,
    as_of: dt.date | None = None,
    rules: EligibilityRules | None = None,
    bulk_settings: BulkSettings | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScreeningReport:
    """Read what changed (everything with ``full``, or since ``since``), then rank everyone.

    Without ``since`` and ``full`` the run continues from the scope's watermark (a first run reads
    everything).
    """
    rules = rules or load_rules()
    as_of = as_of or dt.date.today()
    server, key = client.base_url, watermark_key(group, rules)
    say = on_progress or (lambda _line: None)
    # The Groups first, before anything is read: one that cannot be ranked is refused, and those the
    # Group lists are exported too (a server's Group export covers the Patients it lists, not theirs).
    scope = await expand_group(_group_reader(client), group, as_of, {server}) if group is not None else None
    given = since
    with store.session() as s:
        # Facts kept under other rules (or by another generation): no run may continue from them now,
        # this one is about to keep facts under these rules (were they put back, the store would hold
        # a mix while such a watermark said it held theirs).
        stale = forget_watermarks(s, server, starting=_KEY_PREFIX, keeping=key.partition(":")[0] + ":")
        if since is None and not full:
            since = get_watermark(s, server, key)
    reread = None
    if since is None and not full and any(k.partition(":")[2] == key.partition(":")[2] for k in stale):
        reread = (
            "what screening keeps of a resource changed since this scope was last screened (the rules' "
            "encounter classes, ignored statuses or screens, or this version's facts): everything is read again"
        )
        say(reread)
    read = functools.partial(_read, store, client, rules, say, bulk_settings=bulk_settings, use_export=use_export)
    report = await read(group, since)
    report.reread = reread
    marks = {key: report.transaction_time}
    if scope is not None:
        marks |= await _read_within(store, server, rules, read, scope, report, say, since=given, full=full)
    if scope is not None:
        report.members, report.groups = scope.patients, scope.groups
    say(f"read {sum(report.read.values())} resources; ranking")
    rank(store, server, rules, as_of, report)
    with store.session() as s:
        for mark, at in marks.items():
            set_watermark(s, server, mark, at)
    return report


async def _read_within(
    store: Store,
    server: str,
    rules: EligibilityRules,
    read: Callable[[str | None, str | None], Awaitable[ScreeningReport]],
    scope: GroupScope,
    report: ScreeningReport,
    say: Callable[[str], None],
    *,
    since: str | None,
    full: bool,
) -> dict[str, str]:
    """Read the Groups listed within the one asked for (those listing Patients), each by its own
    export from its own watermark — one listed since the last run is read whole, though its patients'
    data is older than the asked-for Group's watermark; what is read is added to ``report``. Returns
    the watermarks to set once the ranking is done."""
    marks: dict[str, str] = {}
    for nested in scope.listing:
        key = watermark_key(nested, rules)
        if since is None and not full:
            with store.session() as s:
                from_ = get_watermark(s, server, key)
        else:
            from_ = since
        say(f"reading the members of Group/{nested}, listed within Group/{scope.groups[0]}")
        part = await read(nested, from_)
        for rtype, n in part.read.items():
            report.read[rtype] = report.read.get(rtype, 0) + n
        report.facts, report.deleted = report.facts + part.facts, report.deleted + part.deleted
        marks[key] = part.transaction_time
    return marks


def _group_reader(client: AsyncFhirClient) -> Callable[[str], Awaitable[dict[str, Any]]]:
    async def read(group_id: str) -> dict[str, Any]:
        return await client.read("Group", group_id)

    return read


async def _read(
    store: Store,
    client: AsyncFhirClient,
    rules: EligibilityRules,
    say: Callable[[str], None],
    group: str | None,
    since: str | None,
    *,
    bulk_settings: BulkSettings | None,
    use_export: bool | None,
) -> ScreeningReport:
    """Read the scope's resources (the system's, or one Group's: its export) changed since ``since``
    into the store's facts; the report of what was read (and the transaction time to continue from)."""
    server = client.base_url
    async with read_population(
        client,
        _request(rules, group, since),
        on_progress=_export_status(say),
        settings=bulk_settings,
        use_export=use_export,
    ) as population:
        report = ScreeningReport(
            server=server,
            scope=f"Group/{group}" if group else "system",
            source="export" if isinstance(population, BulkExport) else "search",
            since=since,
            transaction_time=population.transaction_time,
        )
        if isinstance(population, BulkExport) and (failed := await population.failures()):
            # Resources are missing from the output: read as complete, the watermark would pass them.
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            raise BulkExportFailed(f"the server could not export everything: {failed[0]}{more}")
        # The server's own references: relative, or absolute at its base — the one it is read at, and
        # (searches) the one its fullUrls name; any other base is another server's.
        bases = {server}
        if isinstance(population, PagedPopulation):
            population.on_entries = lambda entries: bases.update(full_url_bases(entries))
        await _ingest(store, server, rules, population.resources(), report, say, bases, client=client)
        gone: list[tuple[str, str]] = []
        async for rtype, rid in population.deleted():
            if rtype in SCREENED_TYPES:
                gone.append((rtype, rid))
            if len(gone) >= FACT_BATCH:
                report.deleted += _forget(store, server, gone)
        report.deleted += _forget(store, server, gone)
    return report


def _export_status(say: Callable[[str], None]) -> Callable[[str], None]:
    """The server's word for its export at each status poll (``X-Progress``: "writing", "40%"), named
    as such (bare, it read as a stray line) and said when it changes, not at every poll of a long export."""
    last: list[str] = []

    def status(progress: str) -> None:
        if last[-1:] != [progress]:
            last[:] = [progress]
            say(f"the server's export: {progress[:120]}")

    return status


def _forget(store: Store, server: str, gone: list[tuple[str, str]]) -> int:
    """Drop the facts of resources the export says were deleted."""
    n = len(gone)
    if gone:
        with store.session() as s:
            drop_facts(s, server, gone)
        gone.clear()
    return n


async def screen_files(
    store: Store,
    server: str,
    files: Sequence[Path],
    *,
    as_of: dt.date | None = None,
    rules: EligibilityRules | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScreeningReport:
    """Screen an export of ``server`` delivered as NDJSON files (one resource per line, any types):
    the same facts, kept under that server, and the same ranking. A line that is not a FHIR resource
    stops the run with its file and line (``NotNdjson``), before anything is ranked. A reference is
    the server's own when relative or absolute at ``server``'s base (Bulk Data lets an export write
    either); one at another base (``https://other.example/fhir/Patient/1``) names another server's
    resource."""
    rules = rules or load_rules()
    report = ScreeningReport(
        server=server, scope="files", source="files", transaction_time=dt.datetime.now(dt.UTC).isoformat()
    )
    say = on_progress or (lambda _line: None)
    await _ingest(store, server, rules, _lines(files), report, say, {server})
    say(f"read {sum(report.read.values())} resources; ranking")
    rank(store, server, rules, as_of or dt.date.today(), report)
    return report


async def _lines(files: Sequence[Path]) -> AsyncIterator[dict[str, Any]]:
    for path in files:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if number == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")  # the byte-order mark Windows tools write
                if not line.strip():
                    continue
                try:
                    resource = orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise NotNdjson(f"{path.name}: line {number} is not JSON") from None
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    raise NotNdjson(f"{path.name}: line {number} is not a FHIR resource")
                yield resource


async def _ingest(
    store: Store,
    server: str,
    rules: EligibilityRules,
    resources: AsyncIterator[dict[str, Any]],
    report: ScreeningReport,
    say: Callable[[str], None],
    bases: set[str],
    *,
    client: AsyncFhirClient | None = None,
) -> None:
    """Reduce each resource to its fact as it streams in; store the facts a batch at a time.

    A resource that now tells screening nothing (a visit cancelled, a diagnosis resolved) drops the
    fact an earlier read kept of it, so an incremental run cannot leave a stale reason behind.

    A screening panel whose answers are member Observations (``hasMember``, as Gravity's and US
    Core's SDOH assessments record them) is read with them: the export's ``_typeFilter`` and the
    searches ask for the panels' codes, not their items', so with a ``client`` the members not read
    in the stream are read by id, ``MEMBER_BATCH`` at a time — a few searches for the population,
    not one per patient.

    ``bases``: the server's own (see ``fact_of``), which a search's pages may add to as they are read."""
    batch: dict[tuple[str, str], FactRecord | None] = {}
    wanted: set[str] = set()
    async for resource in resources:
        rtype = str(resource.get("resourceType"))
        report.read[rtype] = report.read.get(rtype, 0) + 1
        _keep(resource, rules, batch, bases)
        if client is not None and rtype == "Observation" and batch.get(("Observation", str(resource.get("id")))):
            wanted |= set(members_of(resource, bases))
        if len(wanted) >= MEMBER_BATCH:
            await _read_members(client, wanted, rules, batch, report, bases)
        if len(batch) >= FACT_BATCH:
            report.facts += _store_facts(store, server, batch)
            say(f"read {sum(report.read.values())} resources")
    await _read_members(client, wanted, rules, batch, report, bases)
    report.facts += _store_facts(store, server, batch)


def _keep(
    resource: dict[str, Any], rules: EligibilityRules, batch: dict[tuple[str, str], FactRecord | None], bases: set[str]
) -> None:
    """Put a resource's fact in the batch, or the drop of the fact an earlier read kept of it."""
    rtype, rid = str(resource.get("resourceType")), resource.get("id")
    fact = fact_of(resource, rules, bases)
    if fact is not None:
        batch[(fact.resource_type, fact.resource_id)] = fact
    elif rtype in SCREENED_TYPES and isinstance(rid, str) and rid:
        batch[(rtype, rid)] = None


async def _read_members(
    client: AsyncFhirClient | None,
    wanted: set[str],
    rules: EligibilityRules,
    batch: dict[tuple[str, str], FactRecord | None],
    report: ScreeningReport,
    bases: set[str],
) -> None:
    """Read the member Observations ``wanted`` by id (those of the batch's own stream are had), and
    the members of those that group others (a panel's sections), ``MEMBER_DEPTH`` levels down."""
    for _level in range(MEMBER_DEPTH):
        if client is None:
            break
        ids = sorted(i for i in wanted if ("Observation", i) not in batch)
        wanted.clear()
        for start in range(0, len(ids), MEMBER_BATCH):
            search = client.search("Observation").where("_id", ",".join(ids[start : start + MEMBER_BATCH]))
            async for page in search.count(MEMBER_BATCH).pages():
                bases.update(full_url_bases(page.entries))
                for resource in page.matches:
                    if resource.get("resourceType") == "Observation":
                        report.read["Observation"] = report.read.get("Observation", 0) + 1
                        _keep(resource, rules, batch, bases)
                        if batch.get(("Observation", str(resource.get("id")))):
                            wanted |= set(members_of(resource, bases))
    wanted.clear()


def _store_facts(store: Store, server: str, batch: dict[tuple[str, str], FactRecord | None]) -> int:
    facts = [f for f in batch.values() if f is not None]
    gone = [key for key, f in batch.items() if f is None]
    if batch:
        with store.session() as s:
            put_facts(s, server, facts)
            drop_facts(s, server, gone)
        batch.clear()
    return len(facts)


def rank(store: Store, server: str, rules: EligibilityRules, as_of: dt.date, report: ScreeningReport) -> None:
    """Assess every patient whose facts the store holds for ``server`` (``report.members``, a Group's,
    where set), one slice at a time, and forget the candidates of patients it holds no fact of any more."""
    with store.session() as s:
        forget_candidates_without_facts(s, server)
    members = sorted(set(report.members)) if report.members is not None else None
    # Each row says which ranking it is of: a Group's (its members only) or the whole population's.
    scope = report.scope if members is not None else "system"
    after: str | None = None
    while True:
        with store.session() as s:
            if members is None:
                slice_ = patient_facts_after(s, server, after, RANK_SLICE)
            else:
                start = bisect.bisect_right(members, after) if after is not None else 0
                slice_ = patient_facts_of(s, server, members[start : start + RANK_SLICE])
            if not slice_:
                return
            ids = [p for p, _ in slice_]
            in_case = open_case_patient_ids(s, ids, server_base=server)
            eligible: list[CandidateRecord] = []
            for patient_id, facts in slice_:
                patient = PatientFacts(patient_id=patient_id, open_case=patient_id in in_case)
                for fact in facts:
                    patient.add(fact)
                assessment = assess(patient, rules, as_of)
                report.patients += 1
                if assessment.eligible:
                    reasons = [r.model_dump(mode="json") for r in assessment.reasons]
                    eligible.append(
                        CandidateRecord(
                            server_base=server,
                            patient_id=patient_id,
                            score=assessment.score,
                            reasons=reasons,
                            assessed_on=as_of,
                            scope=scope,
                        )
                    )
                elif assessment.excluded == "already in an open case" and assessment.score >= rules.minimum_score:
                    report.excluded_open_case += 1
            replace_candidates(s, server, ids, eligible)
            report.candidates += len(eligible)
            after = ids[-1]
