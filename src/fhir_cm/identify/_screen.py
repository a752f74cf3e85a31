"""Population screening against a FHIR server: read, reduce to facts, rank.

1. **Read** the population's Patients, Encounters, Conditions and screening Observations by Bulk
   Data ``$export`` (system or Group level), or by paged searches where the server offers none
   (``_read``). Observations are narrowed to the screening panels with ``_typeFilter`` (a
   hospital's Observations are mostly vital signs and labs).
2. **Reduce** each resource to its fact as it streams in (``_ingest``) and store the facts in
   batches, keyed by resource: memory holds one batch, whatever the file sizes.
3. **Rank** everyone whose facts the store holds — not only those read this time — in slices of
   patients: each slice's facts are read back, assessed against the rules (``_assess``), patients in
   an open case excluded, and the slice's candidates replaced. A Group's run ranks the Group's
   members (``_group``: and those of the Groups it lists, each Group exported for its own) and no one
   else: their candidates are replaced, everyone else's stay as the last run that ranked them left
   them (a clinic's screening neither lists another clinic's patients nor empties the server's list
   of them). Each candidate row keeps the scope that ranked it (``system`` or ``Group/<id>``).
4. The export's ``transactionTime`` becomes the per-server (and per-Group, each Group listed within
   too) watermark (``_watermark``): the next run asks only for what changed since (``_since``), and
   ranks everyone again from the store. The watermark's key names the rules' part facts depend on
   (``facts_digest``): after an edit of it the next run reads everything, and says why
   (``ScreeningReport.reread``). Each Group's members are kept with its watermark: a Patient it lists
   that it did not then, whose older data the incremental export leaves out, is read whole
   (``_group_runs``).

Nothing half-read is taken as complete: an export that fails (or a file that is not NDJSON) raises
before the watermark moves, and the facts already stored are only ever replaced by newer ones.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..fhir import AsyncFhirClient, BulkSettings, NotNdjson
from ..store import (
    CandidateRecord,
    Store,
    forget_candidates_without_facts,
    forget_watermarks,
    get_watermark,
    keep_group_members,
    open_case_patient_ids,
    patient_facts_after,
    patient_facts_of,
    replace_candidates,
    set_watermark,
)
from ._assess import assess
from ._facts import PatientFacts
from ._group import expand_group
from ._group_runs import GroupRead, read_groups
from ._ingest import SCREENED_TYPES, ingest
from ._read import read_patients, read_scope
from ._report import ScreeningReport
from ._rules import EligibilityRules, load_rules
from ._watermark import KEY_PREFIX, watermark_key

__all__ = ["SCREENED_TYPES", "ScreeningReport", "rank", "screen_files", "screen_population", "watermark_key"]

#: Patients assessed per slice while ranking.
RANK_SLICE = 1000


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
        stale = forget_watermarks(s, server, starting=KEY_PREFIX, keeping=key.partition(":")[0] + ":")
        if since is None and not full:
            since = get_watermark(s, server, key)
    reread = None
    if since is None and not full and any(k.partition(":")[2] == key.partition(":")[2] for k in stale):
        reread = (
            "what screening keeps of a resource changed since this scope was last screened (the rules' "
            "encounter classes, ignored statuses or screens, or this version's facts): everything is read again"
        )
        say(reread)
    read = functools.partial(read_scope, store, client, rules, say, bulk_settings=bulk_settings, use_export=use_export)
    if scope is None:
        done = GroupRead(report=await read(None, since), marks={}, lists=[])
        done.marks[key] = done.report.transaction_time
    else:
        whole = functools.partial(read_patients, store, client, rules, say)
        done = await read_groups(store, server, rules, read, whole, scope, say, since=since, given=given, full=full)
        done.report.members, done.report.groups = scope.patients, scope.groups
    report = done.report
    report.reread = reread
    say(f"read {sum(report.read.values())} resources; ranking")
    rank(store, server, rules, as_of, report)
    with store.session() as s:
        for mark, at in done.marks.items():
            set_watermark(s, server, mark, at)
        for kept in done.lists:
            keep_group_members(s, server, kept.group, kept.members, kept.known)
    return report


def _group_reader(client: AsyncFhirClient) -> Callable[[str], Awaitable[dict[str, Any]]]:
    async def read(group_id: str) -> dict[str, Any]:
        return await client.read("Group", group_id)

    return read


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
    await ingest(store, server, rules, _lines(files), report, say, {server})
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
