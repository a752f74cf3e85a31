"""The pull's second half: merging what it took in into the store's cases (see ``_pull``, step 4).

Each case the run took something in for is read with its ledger copies and outbox rows, merged three
ways with what the server had and what the store has, and saved once; its new server copies go into
the ledger. ``Merging`` holds this half of the puller's work; ``_pull._Puller`` the other (searching,
checking, placing, holding).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..checks import MAPPING_PROBLEM
from ..fhir import a_resource
from ..domain import Case
from ..mapping import CaseReads, FhirVersion, MappingError, ResourceKey, dates_as_written
from ..store import (
    CaseRecord,
    LedgerEntry,
    OutboxStatus,
    Store,
    UnreadableCase,
    add_quarantine,
    clear_quarantine,
    copies_of_cases,
    get_case_records,
    ledger_by_server_id,
    list_ledger,
    outbox_statuses,
    put_ledger,
    put_resources,
    save_case,
    set_watermark,
)
from ._conflicts import merge_case, record_clashes
from ._intake import is_newer, ledger_entry, version_of
from ._membership import RunEpisodes
from ._pull_read import RULE_PROBLEM, CaseReader
from ._report import PullReport
from ._spill import Spill, newest

__all__ = ["MERGE_CASES", "Merging"]

log = logging.getLogger("fhir_cm.sync")

#: How many cases are read at once when merging: each comes with all its ledger copies, so a
#: transaction's page of resources spread over many cases (an Encounter each) would read all of
#: their copies at once otherwise.
MERGE_CASES = 10
#: About how many resources are merged per transaction (a page's worth).
MERGE_TRANSACTION = 200


class Merging:
    """The merging half of a pull (``_pull._Puller`` sets these attributes)."""

    store: Store
    base: str
    version: FhirVersion
    reader: CaseReader
    report: PullReport
    spill: Spill
    buffer: dict[str, dict[ResourceKey, Mapping[str, Any]]]
    held: int
    held_bytes: int
    episodes: RunEpisodes
    marks: dict[str, str]
    deferred: dict[str, list[tuple[ResourceKey, Mapping[str, Any]]]]
    placed: dict[tuple[str, str], str]
    new: set[str]
    updated: set[str]

    def _quarantine(self, session: Session, resource: Mapping[str, Any], reason: str) -> None:
        entry = add_quarantine(session, source=self.base, raw=resource, reason=reason)
        self.report.count_set_aside(entry.id, news=entry.news)
        # Each pull reads the overlap again: the same resource is worth a warning once, not every few seconds.
        level = logging.WARNING if entry.news else logging.DEBUG
        log.log(level, "quarantined %s from %s: %s", a_resource(resource.get("resourceType")), self.base, reason)

    def _record(self, session: Session, entries: list[LedgerEntry]) -> None:
        """Note copies taken in as the server's; an entry in quarantine of any of them goes (the
        resource as the server has it now came in)."""
        put_ledger(session, entries)
        clear_quarantine(session, self.base, ((e.resource_type, e.server_id) for e in entries if e.server_id))

    # -- flushing: merging the buffered cases -----------------------------------------------------

    def flush(self, *, last: bool = False) -> None:
        """Merge and save every buffered case once, a page's worth of resources per transaction.

        The deferred resources of the buffered cases are tried again with them (what the case
        waited for may be among them); with ``last`` all of them are (every type is in), and what
        still does not read is quarantined. The watermarks of the types done so far are written with
        the last transaction, unless resources are still deferred (they would be skipped next time).
        """
        sizes = self.spill.sizes()
        self._retry_deferred(everything=last, spilled=sizes)
        buffer, self.buffer, self.held, self.held_bytes = self.buffer, {}, 0, 0
        self.episodes.clear()  # merged now: the store has them
        for case_id, items in buffer.items():
            sizes[case_id] = sizes.get(case_id, 0) + len(items)
        chunks = _chunks(sizes)
        for n, chunk in enumerate(chunks):
            if n and _stopped():
                raise asyncio.CancelledError  # the transactions before are kept; the watermarks stay
            with self.store.session() as session:
                for start in range(0, len(chunk), MERGE_CASES):
                    cases = chunk[start : start + MERGE_CASES]
                    self._merge_cases(session, cases, self._gather(cases, buffer), last=last)
                if n == len(chunks) - 1 and not self.deferred:
                    for rtype, latest in self.marks.items():
                        self.report.watermarks[rtype] = set_watermark(session, self.base, rtype, latest)
                    self.marks = {}
        self.spill.clear()
        self.placed = self._deferred_placed()

    def _gather(
        self, cases: list[str], buffer: Mapping[str, Mapping[ResourceKey, Mapping[str, Any]]]
    ) -> dict[str, dict[ResourceKey, Mapping[str, Any]]]:
        """What the run took in for these cases: spilled, then buffered (the newest copy of each)."""
        gathered: dict[str, dict[ResourceKey, Mapping[str, Any]]] = {c: {} for c in cases}
        for case_id, key, resource in self.spill.take(cases):
            newest(gathered[case_id], [(key, resource)])
        for case_id in cases:
            newest(gathered[case_id], buffer.get(case_id, {}).items())
        return gathered

    def _deferred_placed(self) -> dict[tuple[str, str], str]:
        return {(k.type, str(r.get("id"))): c for c, items in self.deferred.items() for k, r in items}

    def _retry_deferred(self, *, everything: bool, spilled: Mapping[str, int]) -> None:
        """Put back into the buffer the deferred resources of the cases it (or the scratch file,
        ``spilled``) holds (all, if ``everything``).

        A deferred resource waits for another of its case (a rejected ServiceRequest for its Task),
        which can only come with the case in the buffer: so none is held longer than the types it
        waits for take to arrive, and the deferred set does not grow with the size of the pull.
        """
        for case_id in [c for c in self.deferred if everything or c in self.buffer or c in spilled]:
            items = self.buffer.setdefault(case_id, {})
            for key, resource in self.deferred.pop(case_id):  # the buffer holds later copies; keep those
                items.setdefault(key, resource)

    def _merge_cases(
        self,
        session: Session,
        cases: list[str],
        buffer: Mapping[str, Mapping[ResourceKey, Mapping[str, Any]]],
        *,
        last: bool,
    ) -> None:
        """Merge a few cases, read together: their records, ledger copies and outbox rows.

        A stored case this version cannot read is not merged into (that would write over it): its
        resources are quarantined with the reason, the others merged as ever."""
        skipped: list[UnreadableCase] = []
        records = get_case_records(session, cases, skipped=skipped)
        unreadable = {bad.case_id: bad for bad in skipped}
        ledger: dict[str, list[LedgerEntry]] = {}
        for entry in list_ledger(session, self.base, case_ids=cases):
            ledger.setdefault(str(entry.case_id), []).append(entry)
        outbox = outbox_statuses(session, cases)
        # The stored resources, for the dates as written: the ledger's copies stand for those they match.
        known = {
            ResourceKey(e.resource_type, e.key): (e.content_hash, e.server_copy) for es in ledger.values() for e in es
        }
        stored = copies_of_cases(session, cases, known)
        entries: list[LedgerEntry] = []
        for case_id in cases:
            if case_id in unreadable:
                for _, resource in self._newer(list(buffer[case_id].items()), ledger.get(case_id, [])):
                    self._quarantine(session, resource, str(unreadable[case_id]))
                continue
            taken = self.merge(
                session,
                case_id,
                list(buffer[case_id].items()),
                records.get(case_id),
                ledger.get(case_id, []),
                outbox.get(case_id, set()),
                stored.get(case_id, {}),
                last=last,
            )
            if taken:
                made = [ledger_entry(self.base, case_id, k, r) for k, r in taken]
                entries.extend(made)
                put_resources(
                    session,
                    case_id,
                    [(k.value, r) for k, r in taken],
                    fhir_version=self.version,
                    source=self.base,
                    hashes={(e.resource_type, e.key): e.content_hash for e in made if e.content_hash},
                )
        self._record(session, entries)

    def _newer(
        self, items: list[tuple[ResourceKey, Mapping[str, Any]]], ledger: list[LedgerEntry]
    ) -> list[tuple[ResourceKey, Mapping[str, Any]]]:
        """The items newer than the ledger's copies (counting the others unchanged): the ledger may
        have moved since the page was read (a pusher's echo), and each pull reads an overlap again."""
        versions = {ResourceKey(e.resource_type, e.key): e.version_id for e in ledger}
        newer = [(k, r) for k, r in items if k not in versions or is_newer(version_of(r), versions[k])]
        self.report.unchanged += len(items) - len(newer)
        return newer

    def merge(
        self,
        session: Session,
        case_id: str,
        items: list[tuple[ResourceKey, Mapping[str, Any]]],
        record: CaseRecord | None,
        ledger: list[LedgerEntry],
        outbox: set[OutboxStatus],
        stored: Mapping[ResourceKey, tuple[FhirVersion, Mapping[str, Any]]],
        *,
        last: bool,
    ) -> list[tuple[ResourceKey, Mapping[str, Any]]]:
        """Bring one case's newly pulled resources into it (see the module docstring, step 4).

        Returns the resources taken in (to be recorded as the server's copies). Before the last
        flush, those that keep the case from reading are deferred and the others taken in; at the
        last, they are quarantined. ``stored``: the case's resources as the store holds them; the
        case is saved with what they and those taken in write as a year or a month (``save_case``).
        """
        items = self._newer(items, ledger)
        if not items:
            return []
        local = record.case if record is not None else None
        held = {ResourceKey(e.resource_type, e.key): e.server_copy for e in ledger if e.server_copy is not None}
        reads = CaseReads()  # the case as the server had it and has it now share most copies: read once
        try:
            server = self.reader.read({**held, **dict(items)}, local, reads=reads)
        except MappingError:
            items, unread = self.reader.isolate(held, local, items, reads)
            if last:
                for (_, resource), problem in unread:
                    self._quarantine(
                        session,
                        resource,
                        problem if problem.startswith(RULE_PROBLEM) else f"{MAPPING_PROBLEM}{problem}",
                    )
            elif unread:
                self.deferred.setdefault(case_id, []).extend(item for item, _ in unread)
            if not items:
                return []
            server = self.reader.read({**held, **dict(items)}, local, reads=reads)
        after = {**stored, **{key: (self.version, resource) for key, resource in items}}
        system = self.reader.system
        if record is None:
            save_case(session, server, enqueue=False, written=dates_as_written(server, after, system))
            self.new.add(case_id)
        else:
            local = record.case
            try:
                base = self.reader.read(held, local, checked=False, reads=reads) if held else None
            except MappingError:
                base = None
            server = _as_party(session, self.base, local, server)
            base = _as_party(session, self.base, local, base) if base is not None else None
            outcome = merge_case(base, local, server, detect_clashes=_waiting(outbox, base, local))
            written = dates_as_written(outcome.case, after, system)
            if save_case(session, outcome.case, enqueue=False, written=written) != record.revision:
                self.updated.add(case_id)
            self.report.conflicts += len(record_clashes(session, case_id, outcome.clashes))
        return items


def _as_party(session: Session, base_url: str, local: Case, read: Case) -> Case:
    """``read`` naming the local case's patient where it names the record the ledger maps that
    patient to (the survivor of a merge, a Patient the pusher created): the server calling the same
    person by another record is no change of the case's patient. A merge that moves references
    (HAPI's ``$merge``) rewrites the case's own resources to name the survivor."""
    if read.patient.id == local.patient.id:
        return read
    known = ledger_by_server_id(session, base_url, "Patient", read.patient.id)
    if known is None or known.key != local.patient.id:
        return read
    return read.model_copy(update={"patient": local.patient})


def _stopped() -> bool:
    """Whether the pull was told to stop (SIGTERM, Ctrl-C, a worker told to stop: its task cancelled).

    The merge runs on the event loop's thread, so the cancellation reached the pull only at its next
    await, once every case was merged: a large pull's minute at the end, past a container's grace
    period. Checked between transactions, it stops after the one under way."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # not in an event loop
        return False
    return task is not None and task.cancelling() > 0


def _chunks(sizes: Mapping[str, int]) -> list[list[str]]:
    """The cases to merge (with how many resources each) in groups of about a page's worth of
    resources, merged one transaction each."""
    chunks: list[list[str]] = [[]]
    size = 0
    for case_id, held in sizes.items():
        if size >= MERGE_TRANSACTION:
            chunks.append([])
            size = 0
        chunks[-1].append(case_id)
        size += held
    return chunks


def _waiting(outbox: set[OutboxStatus], base: Case | None, local: Case) -> bool:
    """Whether a local change may still be on its way to the server (see the module docstring, step 4)."""
    if outbox & {OutboxStatus.PENDING, OutboxStatus.IN_FLIGHT}:
        return True
    return OutboxStatus.FAILED in outbox and (base is None or base != local)
