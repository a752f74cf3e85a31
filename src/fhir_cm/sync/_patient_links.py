"""A case's patient record merged into another: the record the hospital uses now.

When a hospital merges a person's duplicate records (HAPI's ``$merge``, an MPI/MDM), the retired
Patient gets a ``link`` of type ``replaced-by`` to the surviving one (and ``active: false``); the
survivor may carry ``replaces`` back. From then on the hospital records Encounters under the
survivor: a tracker reading only the retired id never sees the discharge, so no follow-up is asked.

Only ``replaced-by`` is followed: it is the one link type that says "this record must no longer be
used, use that one" (FHIR ``link-type``). ``replaces`` points back at a retired record, ``refer``
and ``seealso`` at records that stay valid beside this one — none of them names where the person's
new records go. A survivor may itself have been merged since, so the link is followed again from
it, at most ``MAX_HOPS`` times; a chain that loops back, or goes on longer, names no survivor (the
records are read, nothing is recorded) — a hospital's merges do not produce either.

Only a reference to a Patient on the same server is followed (relative, or absolute at its base).

A tracker run reads the records of all its cases' patients first, ``BATCH`` at a time
(``Patient?_id=a,b,…``: one request per chunk, not one per case), and follows the links of only the
records found replaced, one read per hop. Records the pull round's watch read already (its search for
merged records) are taken as read, not asked for again in the same round. A server refusing the
search has each record read on its own instead.

A merge may delete the retired record instead (``$merge`` with ``delete-source``; an MPI purging a
duplicate): there is then no ``replaced-by`` to read. A first record absent (the search does not
return it, a read answers 404 or 410) is looked for as the ``replaces`` link of another
(``Patient?link=Patient/a,Patient/b,…``, one search per chunk, unless the CapabilityStatement
declares Patient's search parameters without ``link``): exactly one record naming it so is its
survivor, followed on from there as any. Only ``replaces`` says that record took this one's place;
``seealso`` and ``refer`` name records in use beside it. Only the first page is read: the matches
are at most a few per record looked for, and a server ignoring an unknown parameter would otherwise
page through every Patient it holds. Nothing found ends the chain there, as before.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from sqlalchemy.orm import Session

from ..fhir import AsyncFhirClient, FhirError, ResourceNotFound
from ..mapping import parse_reference
from ..store import LedgerEntry, get_ledger, ledger_by_server_id, put_ledger
from ._intake import last_updated_of, later_mark

__all__ = [
    "BATCH",
    "MAX_HOPS",
    "REPLACED_BY",
    "REPLACES",
    "PatientChain",
    "PatientChains",
    "follow_chains",
    "follow_replaced_by",
    "forget_survivor",
    "linked",
    "record_survivor",
    "replaced_by",
    "replacing_records",
]

log = logging.getLogger("fhir_cm.sync")

#: The link type naming the record to use instead (FHIR ``link-type``).
REPLACED_BY = "replaced-by"
#: The link type by which a survivor names a record it took the place of.
REPLACES = "replaces"
#: How many ``replaced-by`` links are followed from one record before giving up.
MAX_HOPS = 4
#: Patients per batched search (here and in the watch): a comma-joined list stays well within URL
#: limits (~2 KB).
BATCH = 50


class PatientChain(BaseModel):
    """The records reached from one patient id by its ``replaced-by`` links."""

    ids: list[str] = Field(description="Every id reached, the first one first (Encounters are read for each).")
    survivor: str | None = Field(
        default=None, description="The record in use now, when the first was replaced and the chain ends there."
    )
    record: dict[str, Any] | None = Field(default=None, repr=False, description="The survivor as read.")
    in_use: bool = Field(
        default=False, description="The first record was read and names no record to use instead: it is in use."
    )


def replaced_by(patient: Mapping[str, Any], base: str) -> str | None:
    """The id of the Patient ``patient`` was replaced by on the server at ``base``, or None."""
    return next(iter(linked(patient, base, REPLACED_BY)), None)


def linked(patient: Mapping[str, Any], base: str, link_type: str) -> list[str]:
    """The ids of the Patients on the server at ``base`` that ``patient`` links to as ``link_type``."""
    out: list[str] = []
    for link in patient.get("link") or ():
        if not isinstance(link, Mapping) or link.get("type") != link_type:
            continue
        other = link.get("other")
        literal = other.get("reference") if isinstance(other, Mapping) else None
        if not isinstance(literal, str) or ("://" in literal and not literal.startswith(base.rstrip("/") + "/")):
            continue  # a record on another server is not one whose Encounters are read here
        parsed = parse_reference(literal)
        if parsed is not None and parsed[0] == "Patient":
            out.append(parsed[1])
    return out


async def follow_replaced_by(
    client: AsyncFhirClient,
    patient_id: str,
    first: dict[str, Any] | None = None,
    known: Mapping[str, dict[str, Any]] | None = None,
) -> PatientChain:
    """Read ``Patient/<patient_id>`` (unless ``first`` is that record, read already) and the records
    its ``replaced-by`` links lead to (see the module); ``known``: records by id the round read
    already, taken for those hops rather than read again.

    A record that cannot be read (absent, deleted, refused) ends the chain where it is: the ids
    reached so far are still read for Encounters, as before any merge.
    """
    ids = [patient_id]
    current = patient_id
    patient = first
    for _ in range(MAX_HOPS + 1):
        if patient is None and known is not None and current in known:
            patient = known[current]
        if patient is None:
            try:
                patient = await client.read("Patient", current)
            except ResourceNotFound:
                if len(ids) == 1:  # deleted by the merge, maybe: the survivor may name it
                    replacing = await replacing_records(client, [patient_id])
                    if patient_id in replacing:
                        return await _after_deleted(client, patient_id, replacing[patient_id])
                break
            except FhirError:
                break  # unreadable: nothing here says the record was replaced
        following = replaced_by(patient, client.base_url)
        if following is None:
            if len(ids) == 1:
                return PatientChain(ids=ids, in_use=True)
            return PatientChain(ids=ids, survivor=current, record=patient)
        if following in ids:
            log.warning("a patient record's replaced-by links loop back; no surviving record taken")
            return PatientChain(ids=ids)
        ids.append(following)
        current, patient = following, None
    else:
        log.warning("a patient record's replaced-by links go on past %d; no surviving record taken", MAX_HOPS)
    return PatientChain(ids=ids[: MAX_HOPS + 1])


class PatientChains(BaseModel):
    """The chains of a tracker run's patients, and the server's time of the first search read."""

    chains: dict[str, PatientChain] = Field(default_factory=dict, description="Patient id → its chain.")
    server_time: str | None = Field(
        default=None,
        description="The first search's Bundle.meta.lastUpdated: every record here was read at or after it.",
    )


async def follow_chains(
    client: AsyncFhirClient, patient_ids: Iterable[str], known: Mapping[str, dict[str, Any]] | None = None
) -> PatientChains:
    """``follow_replaced_by`` for every id of ``patient_ids``, the first records read ``BATCH`` at a
    time by one ``Patient?_id=`` search each (see the module).

    ``known``: records by id the same round read already (the watch's search for merged records): the
    chains of those start from them, and only the other records are searched."""
    given = dict(known or {})
    wanted = list(dict.fromkeys(patient_ids))
    out = PatientChains()
    for pid in wanted:
        if pid in given:
            out.chains[pid] = await follow_replaced_by(client, pid, given[pid], given)
    wanted = [pid for pid in wanted if pid not in given]
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start : start + BATCH]
        found = await _search(client, chunk, out if start == 0 else None)
        replacing = await replacing_records(client, [p for p in chunk if p not in found]) if found is not None else {}
        for pid in chunk:
            if found is None:
                out.chains[pid] = await follow_replaced_by(client, pid)
            elif pid in found:
                out.chains[pid] = await follow_replaced_by(client, pid, found[pid], given)
            elif pid in replacing:
                out.chains[pid] = await _after_deleted(client, pid, replacing[pid])
            else:
                out.chains[pid] = PatientChain(ids=[pid])  # not there: as a read answered 404 or 410
    return out


async def replacing_records(
    client: AsyncFhirClient, gone: list[str], *, since: dt.datetime | None = None
) -> dict[str, dict[str, Any]]:
    """The record that ``replaces`` each of ``gone`` (records absent), by the id it replaces; a
    record two others claim to replace gets none (see the module). ``since``: only records changed
    after it (the watch's watermark)."""
    if not gone or not await _link_searchable(client):
        return {}
    claims: dict[str, dict[str, dict[str, Any]]] = {}
    search = client.search("Patient").where("link", ",".join(f"Patient/{g}" for g in gone)).count(2 * len(gone))
    if since is not None:
        search = search.where("_lastUpdated", f"gt{since.isoformat()}")
    pages = search.pages()
    try:
        page = await anext(pages, None)  # the first page only
    except FhirError as exc:
        log.info("records replacing deleted patient records not looked for: the server answered %s", type(exc).__name__)
        return {}
    finally:
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()
    for r in page.matches if page is not None else ():
        for g in linked(r, client.base_url, REPLACES) if r.get("resourceType") == "Patient" else ():
            if g in gone and isinstance(r.get("id"), str):
                claims.setdefault(g, {})[r["id"]] = r
    if any(len(c) > 1 for c in claims.values()):
        log.warning("a deleted patient record is replaced by more than one record; no surviving record taken")
    return {g: next(iter(c.values())) for g, c in claims.items() if len(c) == 1}


async def _link_searchable(client: AsyncFhirClient) -> bool:
    """Whether the CapabilityStatement leaves ``Patient?link=`` possible (silence, or no statement, is no "no")."""
    try:
        caps = await client.capabilities()
    except FhirError:
        return True
    return not caps.unknown_search_params("Patient", ["link"])


async def _after_deleted(client: AsyncFhirClient, patient_id: str, survivor: dict[str, Any]) -> PatientChain:
    """The chain of a deleted record from the record that replaces it (followed on: it may have been
    merged since)."""
    rest = await follow_replaced_by(client, str(survivor["id"]), survivor)
    if patient_id in rest.ids:
        log.warning("a patient record's links loop back; no surviving record taken")
        return PatientChain(ids=[patient_id])
    if rest.survivor is not None:
        return PatientChain(ids=[patient_id, *rest.ids], survivor=rest.survivor, record=rest.record)
    if rest.in_use:
        return PatientChain(ids=[patient_id, *rest.ids], survivor=rest.ids[0], record=survivor)
    return PatientChain(ids=[patient_id, *rest.ids][: MAX_HOPS + 1])


async def _search(
    client: AsyncFhirClient, chunk: list[str], timed: PatientChains | None
) -> dict[str, dict[str, Any]] | None:
    """The records of ``chunk`` by id (one search), or None when the server refused the search;
    ``timed`` takes the server's time of its first page (its ``meta.lastUpdated``, else its ``Date``)."""
    found: dict[str, dict[str, Any]] = {}
    try:
        async for page in client.search("Patient").where("_id", ",".join(chunk)).count(len(chunk)).pages():
            if timed is not None and page.number == 1:
                # A server whose Bundles carry no time still dates its answer (HTTP ``Date``).
                stamp = last_updated_of({"meta": {"lastUpdated": page.last_updated or page.date}})
                timed.server_time = later_mark(None, stamp, now=dt.datetime.now(dt.UTC))
            for r in page.matches:
                if r.get("resourceType") == "Patient" and r.get("id") in chunk:
                    found[str(r["id"])] = r
    except FhirError as exc:
        log.info("patient records read one at a time: the server answered %s to a search", type(exc).__name__)
        return None
    return found


def record_survivor(session: Session, base: str, party_id: str, chain: PatientChain) -> bool:
    """Record ``chain.survivor`` as the record the server knows the patient ``party_id`` by (the
    ledger's Patient entry); True when that changed.

    The case keeps its patient (the party id is the EHR's, what the case was enrolled with); what
    moves is the server id the ledger maps it to. From then on the watch and the tracker read the
    survivor's Encounters, a pull places what names the survivor in the case, and the next push of
    the case points the patient references it writes at the survivor ("must be used in lieu of"),
    and nothing else of what the server holds. A survivor the ledger already maps another party to
    (the other record is another case's patient) is not recorded: the ledger knows a server record
    as one party, and which one the person is is for a person to settle.
    """
    survivor = chain.survivor
    if survivor is None:
        return False
    held = get_ledger(session, base, "Patient", party_id)
    if held is not None and held.server_id == survivor:
        return False
    other = ledger_by_server_id(session, base, "Patient", survivor)
    if other is not None and other.key != party_id:
        log.warning("a merged patient record's survivor is known as another party here; not recorded")
        return False
    raw_meta = (chain.record or {}).get("meta")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, Mapping) else {}
    version, updated = meta.get("versionId"), meta.get("lastUpdated")
    entry = LedgerEntry(
        server_base=base,
        resource_type="Patient",
        key=party_id,
        server_id=survivor,
        version_id=version if isinstance(version, str) else None,
        server_copy=chain.record,
        last_updated=updated if isinstance(updated, str) else None,
    )
    put_ledger(session, [entry])
    return True


def forget_survivor(session: Session, base: str, party_id: str, system: str) -> bool:
    """Map the patient ``party_id`` back to its own record (the ledger's Patient entry), its record
    being in use again (read, no ``replaced-by``): the hospital undid the merge. True when that
    changed.

    While a survivor was recorded, the records the tracker read were the party's own and the
    survivor's; once the merge is undone the survivor is another person's record again, and reading
    its Encounters would give this case another person's stays and follow-ups. A server id the
    pusher created for the party (it carries our identifier with the party id: the party's own
    record was absent then) is not a survivor, and stays.
    """
    held = get_ledger(session, base, "Patient", party_id)
    if held is None or held.server_id in (None, party_id) or _made_for(held.server_copy, system, party_id):
        return False
    put_ledger(session, [LedgerEntry(server_base=base, resource_type="Patient", key=party_id, server_id=party_id)])
    return True


def _made_for(record: Mapping[str, Any] | None, system: str, party_id: str) -> bool:
    """Whether ``record`` is the Patient the pusher created for ``party_id`` (our identifier, its id)."""
    identifiers = (record or {}).get("identifier")
    return isinstance(identifiers, list) and any(
        isinstance(i, Mapping) and i.get("system") == system and i.get("value") == party_id for i in identifiers
    )
