"""Reading a screening scope from a FHIR server into the store's facts.

The population's Patients, Encounters, Conditions and screening Observations, by Bulk Data
``$export`` (system or Group level) or by paged searches where the server offers none
(``fhir.read_population``), Observations narrowed to the screening panels with ``_typeFilter`` (a
hospital's Observations are mostly vital signs and labs) and the questions they ask; or a few
patients whole, by searches for
just them (those added to a Group since its last run, whose data an incremental export leaves out).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from ..fhir import (
    AsyncFhirClient,
    BulkExport,
    BulkExportFailed,
    BulkRequest,
    BulkSettings,
    PagedPopulation,
    read_population,
)
from ..mapping import full_url_bases
from ..store import Store
from ._ingest import FACT_BATCH, MEMBER_BATCH, SCREENED_TYPES, forget, ingest
from ._report import ScreeningReport
from ._rules import EligibilityRules

__all__ = ["read_patients", "read_scope", "screening_request"]


def screening_request(rules: EligibilityRules, group: str | None, since: str | None) -> BulkRequest:
    """What a scope's read asks for: the screened types, Observations narrowed to the screens."""
    return BulkRequest(
        level="group" if group else "system",
        group_id=group,
        types=list(SCREENED_TYPES),
        since=since,
        type_filters=[f"Observation?code={_screen_codes(rules)}"],
    )


def _screen_codes(rules: EligibilityRules) -> str:
    """The screens' codes: the panels, and the questions some answer of which says a need — an answer
    amended alone, its panel untouched, is read with them (the ranking judges its panel again from the
    facts), and so is one recorded with no panel."""
    # ``_typeFilter`` is itself a comma-separated list of queries (the IG: each URL-encoded, then
    # joined with commas): the comma between the codes is encoded within the query, or servers read
    # ``code=A,B`` as two queries, the first keeping panel A's screens only.
    return "%2C".join(rules.screens.codes)


async def read_scope(
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
        screening_request(rules, group, since),
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
        await ingest(store, server, rules, population.resources(), report, say, bases, client=client)
        gone: list[tuple[str, str]] = []
        async for rtype, rid in population.deleted():
            if rtype in SCREENED_TYPES:
                gone.append((rtype, rid))
            if len(gone) >= FACT_BATCH:
                report.deleted += forget(store, server, gone)
        report.deleted += forget(store, server, gone)
    return report


async def read_patients(
    store: Store,
    client: AsyncFhirClient,
    rules: EligibilityRules,
    say: Callable[[str], None],
    patients: Sequence[str],
    report: ScreeningReport,
) -> None:
    """Read ``patients`` whole — the Patient, their Encounters, Conditions and screens — by searches
    for ``MEMBER_BATCH`` of them at a time (their references go in the URL), into the store's facts;
    what is read is counted in ``report``. Every server offering searches answers these (no Bulk Data
    server here exports chosen patients of a Group: the IG's ``patient`` parameter is not one of
    HAPI's Group export, and other servers ignore it, exporting everyone)."""
    if patients:
        say(f"reading the {len(patients)} patient(s) added to the Groups since their last run, whole")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    bases = {client.base_url}
    for start in range(0, len(patients), MEMBER_BATCH):
        batch = patients[start : start + MEMBER_BATCH]
        ids, refs = ",".join(batch), ",".join(f"Patient/{p}" for p in batch)
        request = BulkRequest(
            types=list(SCREENED_TYPES),
            type_filters=[
                f"Patient?_id={ids}",
                f"Encounter?patient={refs}",
                f"Condition?patient={refs}",
                f"Observation?patient={refs}&code={_screen_codes(rules)}",
            ],
        )
        population = PagedPopulation(client, request, now, overlap=0)
        population.on_entries = lambda entries: bases.update(full_url_bases(entries))
        await ingest(store, client.base_url, rules, population.resources(), report, say, bases, client=client)
    report.added += len(patients)


def _export_status(say: Callable[[str], None]) -> Callable[[str], None]:
    """The server's word for its export at each status poll (``X-Progress``: "writing", "40%"), named
    as such (bare, it read as a stray line) and said when it changes, not at every poll of a long export."""
    last: list[str] = []

    def status(progress: str) -> None:
        if last[-1:] != [progress]:
            last[:] = [progress]
            say(f"the server's export: {progress[:120]}")

    return status
