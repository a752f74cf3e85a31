"""A stream of resources into the store's facts, a batch at a time.

Each resource is reduced to its fact as it streams in (``_facts.fact_of``) and the facts are stored
in batches, keyed by resource: memory holds one batch, whatever the population. A resource read
again replaces its fact, or drops it where it tells screening nothing now.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from ..fhir import AsyncFhirClient
from ..mapping import full_url_bases
from ..store import FactRecord, Store, drop_facts, put_facts
from ._facts import ANSWER, fact_of, members_of
from ._report import ScreeningReport
from ._rules import EligibilityRules

__all__ = ["FACT_BATCH", "MEMBER_BATCH", "MEMBER_DEPTH", "SCREENED_TYPES", "forget", "ingest"]

SCREENED_TYPES = ("Patient", "Encounter", "Condition", "Observation")
#: Facts written per transaction while reading.
FACT_BATCH = 2000
#: Member Observations read per ``Observation?_id=`` search (the ids go in the URL: at most 64
#: characters each, 50 keep it under the 8 KB request line servers commonly accept).
MEMBER_BATCH = 50
#: How far below a panel members are read: its answers, or its sections' (PRAPARE's LOINC panel
#: groups its items by section), and one level more for a grouping of sections.
MEMBER_DEPTH = 3


async def ingest(
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
        if (
            client is not None
            and rtype == "Observation"
            and _counts_members(batch.get(("Observation", str(resource.get("id")))))
        ):
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
                        if _counts_members(batch.get(("Observation", str(resource.get("id"))))):
                            wanted |= set(members_of(resource, bases))
    wanted.clear()


def _counts_members(fact: FactRecord | None) -> bool:
    """Whether the fact is of a screen or of a section grouping answers, whose members count: those of a
    cancelled or entered-in-error panel are kept by id only (no screen of their own), never read."""
    return fact is not None and fact.kind in ("screen", ANSWER)


def _store_facts(store: Store, server: str, batch: dict[tuple[str, str], FactRecord | None]) -> int:
    facts = [f for f in batch.values() if f is not None]
    gone = [key for key, f in batch.items() if f is None]
    if batch:
        with store.session() as s:
            put_facts(s, server, facts)
            drop_facts(s, server, gone)
        batch.clear()
    return len(facts)


def forget(store: Store, server: str, gone: list[tuple[str, str]]) -> int:
    """Drop the facts of resources the export says were deleted."""
    n = len(gone)
    if gone:
        with store.session() as s:
            drop_facts(s, server, gone)
        gone.clear()
    return n
