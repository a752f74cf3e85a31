"""One case's push: its rounds of writes, and what happens on a match or a conflict.

A round maps the case over the server copies it knows (``writes``: unchanged resources and other
systems' records the case manager did not change are left out, known ones are updated with
``If-Match``, new ones created conditionally or under a stable id), sends them in one transaction
with their Provenance (``send``), records each written copy in the ledger at once, and leaves what
is left for the next round: an update of what a conditional create matched, or — after a version
conflict — a merge of what the adapter changed over the re-read server copy (``refresh``), whose
clashes become conflicts for a person. Where the server does not declare that it checks
``If-Match`` (``versioning: versioned-update``), the copies a round updates are re-read before it
is sent and merged the same way if they moved on: such a server would take the update over another
system's edit without a word. At most ``MAX_ROUNDS`` rounds; a ``CaseFailed`` ends them and
says whether a later push may succeed. The writes themselves, and how a copy is compared with
what was sent, are ``_push_writes``'.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NoReturn

import orjson

from ..domain import Case
from ..fhir import (
    a_resource,
    BundleEntry,
    FhirError,
    InvalidResponse,
    ResourceNotFound,
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
    plan_entry,
    same_content,
)
from ..store import LedgerEntry, add_conflict, content_hash, content_json
from ._conflicts import REMOVED_ON_SERVER
from ._foreign import foreign_update, is_foreign
from ._identity import read_existing, rewrite_references
from ._limits import save_transaction_limit
from ._merge import compare, keep_server
from ._parties import case_parties
from ._provenance import provenance_id, provenance_resource
from ._push_session import PushSession, failure_reason
from ._push_writes import Write, assigned_ids, kept_as_sent, moved_on, on_the_wire
from ._refusals import refusal, refusal_text, refused_entries, warnings
from ._report import CaseFailure, CaseWarning, PushReport
from ..errors import FhirCmError

__all__ = ["MAX_ROUNDS", "CaseFailed", "push_case"]

log = logging.getLogger("fhir_cm.sync")

#: Rounds per case: create, update what matched, one conflict retry, one transient retry.
MAX_ROUNDS = 5
#: The longest a server's ``Retry-After`` keeps a failed case's row waiting: a wrong header must not
#: park the outbox for days.
MAX_RETRY_AFTER = 3600.0
_RETRYABLE = (TransientError, InvalidResponse)


class CaseFailed(FhirCmError):
    """Ends a case's rounds: ``permanent`` for a person to look at, else a later push retries."""

    def __init__(self, reason: str, *, permanent: bool, server: ServerReason | None = None) -> None:
        super().__init__(reason)
        self.reason, self.permanent, self.server = reason, permanent, server


async def push_case(session: PushSession, case: Case) -> PushReport:
    """Push one case in rounds; its report says what was written, or why it failed."""
    report = PushReport(cases=1)
    push = _CasePush(session, case, report)
    try:
        await push.run()
    except CaseFailed as failed:
        push.count(push.outcome)  # what its rounds did write, before the failure
        report.failed = 1
        # A case that failed for now waits as long as a server asked (a Retry-After the client's
        # retries did not wait out, met by this case or by its batch's lookups), at most an hour.
        wait = None if failed.permanent else session.client.asked_to_wait()
        report.failures.append(
            CaseFailure(
                case_id=case.id,
                reason=failed.reason,
                permanent=failed.permanent,
                server=failed.server,
                retry_after=min(wait, MAX_RETRY_AFTER) if wait else None,
            )
        )
    except MappingError as exc:
        report.failed = 1
        reason = f"cannot map the case: {type(exc).__name__}"
        report.failures.append(CaseFailure(case_id=case.id, reason=reason, permanent=True))
    session.saved_limit = save_transaction_limit(session.store, session.client, session.saved_limit)
    return report


class _CasePush:
    """The rounds of one case's push."""

    def __init__(self, session: PushSession, case: Case, report: PushReport) -> None:
        self.session, self.case, self.report = session, case, report
        ledger = session.ledgers.get(case.id, {})
        self.bases: dict[ResourceKey, dict[str, Any]] = {k: e.server_copy for k, e in ledger.items() if e.server_copy}
        for key, _, _ in case_plan(case, self.bases):
            if key not in self.bases and key in session.found:
                self.bases[key] = session.found[key]
                session.keep(case.id, [session.ledger_entry(key, case.id, session.found[key])])
        self.keep: dict[ResourceKey, tuple[dict[str, Any], frozenset[str]]] = {}
        self.outcome: dict[ResourceKey, str] = {}
        self.conflict_retried = False
        self.deferred = False  # the last round held back an update naming a resource still to be created
        self.settled = False  # the last round left the server holding exactly what the case maps to

    async def run(self) -> None:
        last: CaseFailed | None = None
        for _ in range(MAX_ROUNDS):
            writes, planned = self.writes()
            if not writes:
                self.count(planned)
                return
            try:
                await self.send(writes)
            except CaseFailed as failed:
                # One more round for a failure for now, none while the server asks to wait: the
                # client has retried each request already, and every round left sent it again at
                # once (five times a struggling server's load; a Retry-After answered straight away).
                if failed.permanent or last is not None or self.session.client.asked_to_wait():
                    raise
                last = failed
                continue
            if self.settled and not self.deferred:
                # Mapping the case again over the copies just written would find nothing to send:
                # the round that confirms it is skipped (see ``send``).
                self.count(planned)
                return
        raise last or CaseFailed("the server copy kept changing; will retry", permanent=False)

    def count(self, planned: Iterable[ResourceKey]) -> None:
        for key in planned:
            kind = self.outcome.get(key, "unchanged")
            setattr(self.report, kind, getattr(self.report, kind) + 1)

    # -- what to send -----------------------------------------------------------------------------

    def writes(self) -> tuple[list[Write], list[ResourceKey]]:
        session, identity = self.session, self.session.identity
        stable = {
            key: identity.stable_id(key)
            for key, _, _ in case_plan(self.case, self.bases)
            if key not in self.bases and not identity.by_identifier(key.type)
        }
        moved = self.moved()
        resources = case_to_resources(
            self.case, session.version, session.system, self.bases, server_ids=stable, parties=moved
        )
        leftover = [orjson.dumps(own) for own in moved]
        writes: list[Write] = []
        refs: References | None = None
        for key, resource in resources.items():
            base = self.bases.get(key)
            content: bytes | None = None  # ``content_json(resource)``, once made (and while it holds)
            if leftover and (base is None or not same_content(resource, base)):
                # The mapping wrote the server's ids for the parties; what it does not build a
                # reference for (an extension's value) may still name one as the case does.
                content = content_json(resource)
                if any(literal in content for literal in leftover):
                    resource, content = rewrite_references(resource, moved), None
            if key in self.keep:
                keep_server(resource, *self.keep[key])
                content = None
            if base is not None and is_foreign(base, session.system):  # another system's record: see _foreign
                refs = refs or self.references()
                update = foreign_update(base, resource, check_version(session.version), session.system, refs)
                if update is None:
                    continue
                resource, content = update, None
            if base is None and key in stable and key not in session.absent:
                raise CaseFailed(f"could not look up {key.type} on the server; will retry", permanent=False)
            full_url = "urn:uuid:" + identity.stable_id(key)
            planned = plan_entry(key, resource, session.system, full_url, base=base, server_id=stable.get(key))
            if planned is not None:
                writes.append(Write(key, on_the_wire(planned), planned.kind, content))
        if any(w.entry.method == "POST" for w in writes):
            # An update naming a resource still to be created waits a round: once the create has
            # answered, the update is built with the real id. (A base found on the server rather
            # than in the ledger names that resource by id already; mixing in a urn:uuid for it
            # would write the same link twice.)
            kept = [w for w in writes if w.kind == "create" or b"urn:uuid:" not in w.content]
            self.deferred, writes = len(kept) < len(writes), kept
        else:
            self.deferred = False
        return writes, list(resources)

    def moved(self) -> dict[str, str]:
        """The case's parties the server calls by other ids: ``Type/id`` as the case spells it → the server's."""
        session = self.session
        patient = self.case.patient.id
        server_patient = session.patients.get(patient)
        if server_patient is None:
            self.unresolved("the patient", ("Patient", patient))
        moved = {f"Patient/{patient}": f"Patient/{server_patient}"} if server_patient != patient else {}
        for rtype, rid in case_parties(self.case):
            server_id = session.parties.get((rtype, rid))
            if server_id is None:
                self.unresolved(f"{a_resource(rtype)} the case names", (rtype, rid))
            if server_id != rid:
                moved[f"{rtype}/{rid}"] = f"{rtype}/{server_id}"
        return moved

    def unresolved(self, what: str, party: tuple[str, str]) -> NoReturn:
        """The case waits for a party the server neither had nor took, saying what the server
        answered (a Patient profile it enforces, refused credentials…): "could not be found or
        created" alone left a refusal to look like a lookup that would come right by itself."""
        exc = self.session.refused.get(party) or self.session.unprepared
        names = [{"name": p.name, "ref": p.id} for p in case_parties(self.case).values()]
        why = refusal(exc, self.case, names) if exc is not None else None
        told = f": {refusal_text(exc, why)}" if exc is not None else ""
        raise CaseFailed(
            f"{what} could not be found or created on the server{told}; will retry", permanent=False, server=why
        )

    def references(self) -> References:
        """References that resolve the case's resources by the server ids of their copies."""
        ids = {k: str(b["id"]) for k, b in self.bases.items() if isinstance(b.get("id"), str)}
        refs = References(self.session.system, ids)
        refs.know_all(k for k, _, _ in case_plan(self.case, self.bases))
        return refs

    def provenances(self, writes: list[Write]) -> list[BundleEntry]:
        session = self.session
        if session.device_ref is None:
            return []
        out = []
        for kind, activity in (("create", "CREATE"), ("update", "UPDATE")):
            chosen = [w for w in writes if w.kind == kind]
            if not chosen:
                continue
            pid = provenance_id(
                self.case.id, activity, [(w.key, content_hash(w.resource, content=w.content)) for w in chosen]
            )
            resource = provenance_resource(
                self.case, activity, [w.target for w in chosen], session.device_ref, resource_id=pid
            )
            out.append(BundleEntry("PUT", f"Provenance/{pid}", resource))
        return out

    def deleted_there(self, writes: list[Write], *, besides: str = "", server: ServerReason | None = None) -> NoReturn:
        """Resources changed here that the server no longer holds (404/410): a conflict each, for a
        person to decide — write it again (``local``) or let it go (``server``). Every later push
        had sent the update of the dead copy again and failed for good, so the change could never
        reach the server, nor could the case be told the resource is gone. ``besides``: what else
        the round's server refused, said after."""
        names = ", ".join(f"{w.key.type} {w.key.value}" for w in writes)
        self.conflicts(
            [(w, None, [REMOVED_ON_SERVER]) for w in writes],
            f"deleted on the server while changed here: {names}{besides and '; '}{besides}",
            server=server,
        )

    async def confirmed_deleted(self, writes: list[Write], *, for_now: bool = True) -> list[Write]:
        """Of the updates a server answered 404/410, those it no longer holds, read again to be sure:
        a 404 may be about something else (a type, a route). That read failing for now leaves it
        open: the case fails for now (``for_now``: unless the round has a refusal for good anyway)."""
        targets = {w.key: (w.key.type, str(self.bases[w.key]["id"])) for w in writes if w.key in self.bases}
        unread: dict[tuple[str, str], FhirError] = {}
        _, missing = await read_existing(self.session.client, targets.values(), unread)
        if for_now and (failed := next((e for e in unread.values() if isinstance(e, _RETRYABLE)), None)):
            names = ", ".join(f"{w.key.type} {w.key.value}" for w in writes if targets.get(w.key) in unread)
            why = f"could not read again {names}, answered as gone ({failure_reason(failed)}); will retry"
            raise CaseFailed(why, permanent=False)
        return [w for w in writes if targets.get(w.key) in missing]

    def conflicts(
        self,
        clashes: list[tuple[Write, dict[str, Any] | None, list[str]]],
        reason: str,
        server: ServerReason | None = None,
    ) -> NoReturn:
        """Record a conflict for each ``(write, server copy — None when deleted —, fields)`` and end
        the case's rounds: a person decides."""
        with self.session.store.session() as s:
            for write, current, fields in clashes:
                add_conflict(
                    s,
                    self.case.id,
                    write.key.type,
                    write.key.value,
                    local=write.resource,
                    server=current,
                    fields=fields,
                )
        self.report.conflicts += len(clashes)
        raise CaseFailed(reason, permanent=True, server=server)

    # -- sending and recording --------------------------------------------------------------------

    async def send(self, writes: list[Write]) -> None:
        unchecked = [w for w in writes if w.kind == "update" and not self.session.checks_if_match(w.key.type)]
        if unchecked and await self.merge_server_edits(unchecked):
            # The server does not declare that it checks If-Match, and a copy moved on since the
            # ledger's: the update would have overwritten that edit. Merged; the next round sends.
            self.settled = False
            return
        provenance = self.provenances(writes)
        try:
            result = await self.session.client.transaction([w.entry for w in writes] + provenance)
        except VersionConflict as exc:
            await self.refresh(writes, exc)
            return
        except _RETRYABLE as exc:
            why = refusal(exc, self.case, self.sent(writes))
            text = refusal_text(exc, why) if why else failure_reason(exc)
            raise CaseFailed(f"{text}; will retry", permanent=False, server=why) from None
        except FhirError as exc:
            if isinstance(exc, ResourceNotFound):  # all or nothing: an update's copy may be gone
                updates = [w for w in writes if w.kind == "update"]
                if lost := await self.confirmed_deleted(updates):
                    self.deleted_there(lost)
            why = refusal(exc, self.case, self.sent(writes))
            text = refusal_text(exc, why)
            raise CaseFailed(f"the server refused the case: {text}", permanent=True, server=why) from None
        results = result.entries
        recorded: list[LedgerEntry] = []
        stale: list[Write] = []
        stale_error: VersionConflict | None = None
        retry: CaseFailed | None = None
        unsent: Write | None = None
        refused: list[tuple[str, str]] = []
        first_why: ServerReason | None = None
        gone: dict[int, tuple[Write, tuple[str, str]]] = {}  # updates answered 404/410, by id(write)
        assigned = assigned_ids(writes, results)
        self.settled = len(results) >= len(writes)
        for write, outcome in zip(writes, results, strict=False):
            if outcome.ok:
                copy = await self.copy_of(write, outcome)
                if copy is None:
                    retry = CaseFailed(f"could not read back a written {write.key.type}; will retry", permanent=False)
                    continue
                # Settled: created, or an update taken; and the server keeps what was sent, but for
                # the ids it gave the resources created in this round. Then the next round, mapping
                # over these copies, would write nothing. A conditional create that matched, or a
                # server that rewrites what it is sent, leaves the next round to merge and decide.
                content = content_json(copy)
                self.settled = self.settled and (outcome.created or write.kind == "update")
                self.settled = self.settled and kept_as_sent(write.content, content, assigned)
                recorded.append(self.session.ledger_entry(write.key, self.case.id, copy, content=content))
                for said in warnings(outcome.outcome, outcome.status, self.case, self.sent(writes)):
                    self.report.warnings.append(
                        CaseWarning(case_id=self.case.id, resource_type=write.key.type, server=said)
                    )
                self.bases[write.key] = copy
                self.keep.pop(write.key, None)
                if outcome.created:
                    self.outcome[write.key] = "created"
                elif write.kind == "update":
                    self.outcome.setdefault(write.key, "updated")
            elif isinstance(outcome.error, VersionConflict):
                stale.append(write)
                stale_error = stale_error or outcome.error
            elif isinstance(outcome.error, _RETRYABLE):  # failed for now: the first such entry is named
                what = failure_reason(outcome.error)
                retry = retry or CaseFailed(f"{write.key.type} not written ({what}); will retry", permanent=False)
            elif outcome.status is None and outcome.error is None:
                # Never sent (single requests stop at the first failure, which is named before it).
                unsent = unsent or write
            else:
                # Refused on its own (a batch's or a single request's entry): the entries after it
                # are recorded all the same — the server wrote them whatever it refused beside them.
                why = refusal(outcome.error, self.case, self.sent(writes)) if outcome.error else None
                reason = refusal_text(outcome.error, why) if outcome.error else f"HTTP {outcome.status}"
                named = (f"{write.key.type} {write.key.value}", reason)
                if write.kind == "update" and isinstance(outcome.error, ResourceNotFound):
                    gone[id(write)] = (write, named)  # deleted there, if a read confirms it
                    continue
                refused.append(named)
                first_why = first_why or why
        self.report.provenances += sum(1 for r in results[len(writes) :] if r.ok)
        for answer in results[len(writes) :]:
            if not answer.ok and answer.error is not None:  # the writes stand: the person is told
                why = refusal(answer.error, self.case, self.sent(writes))
                said = why or ServerReason(diagnostics=failure_reason(answer.error))
                self.report.warnings.append(
                    CaseWarning(case_id=self.case.id, resource_type="Provenance", server=said, taken=False)
                )
        self.session.keep(self.case.id, recorded)
        if not result.atomic:
            await self.amend_provenances(writes, results, provenance, assigned)
        deleted = await self.confirmed_deleted([w for w, _ in gone.values()], for_now=not refused) if gone else []
        refused += [named for w, named in gone.values() if all(w is not d for d in deleted)]
        if deleted:
            self.settled = False
            besides = f"the server refused {refused_entries(refused)}" if refused else ""
            self.deleted_there(deleted, besides=besides, server=first_why)
        if refused:
            self.settled = False
            text = refused_entries(refused)
            raise CaseFailed(f"the server refused {text}", permanent=True, server=first_why)
        if retry is None and unsent is not None:
            retry = CaseFailed(f"{unsent.key.type} not written (never sent); will retry", permanent=False)
        self.settled = self.settled and not stale and retry is None and not self.keep
        if stale_error is not None:
            await self.refresh(stale, stale_error)
        if retry is not None:
            raise retry

    async def amend_provenances(
        self, writes: list[Write], results: list[WriteResult], provenance: list[BundleEntry], assigned: dict[str, str]
    ) -> None:
        """Sent as a batch or one by one, each Provenance was written whatever happened to the
        writes it names: rewritten naming only those the server took (taken back if none was), it
        does not tell of changes that never happened. A server refusing this is logged: the
        writes stand, and the Provenance's id, from what it names, is the next round's."""
        done = {id(w) for w, r in zip(writes, results, strict=False) if r.ok}
        for entry, answer in zip(provenance, results[len(writes) :], strict=False):
            kind = (
                "create" if entry.resource and entry.resource["activity"]["coding"][0]["code"] == "CREATE" else "update"
            )
            named = [w for w in writes if w.kind == kind]
            taken = [w for w in named if id(w) in done]
            if not answer.ok or entry.resource is None or len(taken) == len(named):
                continue
            pid = str(entry.resource["id"])
            targets = [{"reference": assigned.get(w.target, w.target)} for w in taken]
            try:
                if taken:
                    await self.session.client.update({**entry.resource, "target": targets}, versioned=False)
                else:
                    await self.session.client.delete("Provenance", pid)
                    self.report.provenances -= 1
            except FhirError as exc:
                log.warning("could not amend Provenance %s to the writes taken: %s", pid, failure_reason(exc))

    def sent(self, writes: list[Write]) -> list[dict[str, Any]]:
        """What this round sent of the case: the values a server's message must not echo."""
        return [w.resource for w in writes]

    async def copy_of(self, write: Write, outcome: WriteResult) -> dict[str, Any] | None:
        """The server copy an entry left: the answer's body, else read back by id."""
        if outcome.resource is not None and outcome.resource.get("id"):
            return outcome.resource
        if outcome.id:
            return await self.session.read_back(outcome.resource_type or write.key.type, outcome.id)
        return None

    async def refresh(self, writes: list[Write], exc: VersionConflict) -> None:
        """After a version conflict: re-read what moved on, merge what the adapter changed, or record a conflict."""
        self.settled = False
        if self.conflict_retried:
            # Deleted since the merge? (sekmet, HAPI answer its If-Match update 412/409): a conflict.
            await self.current_copies([w for w in writes if w.kind == "update"])
            why = refusal(exc, self.case, self.sent(writes))
            text = f": {refusal_text(exc, why)}" if why else ""
            raise CaseFailed(f"version conflict again after merging{text}; will retry", permanent=False, server=why)
        self.conflict_retried = True
        await self.merge_server_edits(writes)

    async def current_copies(self, updates: list[Write]) -> dict[ResourceKey, dict[str, Any]]:
        """The server's copies ``updates`` update, read again (unread ones left out); a deleted one is a conflict."""
        targets = {w.key: (w.key.type, str(self.bases[w.key]["id"])) for w in updates}
        found, missing = await read_existing(self.session.client, targets.values())
        if missing:
            self.deleted_there([w for w in updates if targets[w.key] in missing])
        return {key: found[target] for key, target in targets.items() if target in found}

    async def merge_server_edits(self, writes: list[Write]) -> bool:
        """Re-read the copies ``writes`` update; merge what moved on since the ledger's copy, or
        record the clashes as conflicts. Whether any had moved on."""
        updates = [w for w in writes if w.kind == "update"]
        found = await self.current_copies(updates)
        if len(found) < len(updates):
            raise CaseFailed("could not re-read the server copies; will retry", permanent=False)
        clashes: list[tuple[Write, dict[str, Any], frozenset[str]]] = []
        seen: list[LedgerEntry] = []
        for write in updates:
            current = found[write.key]
            old = self.bases[write.key]
            if not moved_on(old, current):
                continue
            three_way = compare(old, write.resource, current)
            if three_way.clash:
                clashes.append((write, current, three_way.clash))
                continue
            self.bases[write.key] = current
            self.keep[write.key] = (current, three_way.server_only)
            seen.append(self.session.ledger_entry(write.key, self.case.id, current))
        self.session.keep(self.case.id, seen)
        if clashes:
            names = ", ".join(f"{w.key.type} ({', '.join(sorted(f))})" for w, _, f in clashes)
            self.conflicts([(w, c, sorted(f)) for w, c, f in clashes], f"conflict with a server edit: {names}")
        return bool(seen)
