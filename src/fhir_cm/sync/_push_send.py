"""A round of a case's push on the wire: its writes and their Provenance in one transaction
(``send``), each answer read — a written copy recorded in the ledger at once, a stale one merged, a
deleted one a conflict, a refused one named — and the Provenance of a round the server took only
part of rewritten to name what it took (``amend_provenances``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..fhir import BundleEntry, FhirError, ResourceNotFound, ServerReason, VersionConflict, WriteResult
from ..store import LedgerEntry, content_hash, content_json
from ._provenance import provenance_id, provenance_resource
from ._merge import ancestor
from ._push_clashes import RETRYABLE, CaseClashes, CaseFailed
from ._push_session import failure_reason
from ._push_writes import Write, assigned_ids, kept_as_sent
from ._refusals import refusal, refusal_text, refused_entries, warnings
from ._report import CaseWarning

__all__ = ["CaseSend"]

log = logging.getLogger("fhir_cm.sync")


class CaseSend(CaseClashes):
    """Sending a round's writes and recording what the server answered to each."""

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
        except RETRYABLE as exc:
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
                untaken = self.untaken.pop(write.key, None)
                if untaken is None:
                    recorded.append(self.session.ledger_entry(write.key, self.case.id, copy, content=content))
                else:  # the server's edits, kept, are not yet the case's: recorded as their ancestor
                    copy = ancestor(copy, *untaken)
                    recorded.append(self.session.ledger_entry(write.key, self.case.id, copy))
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
            elif isinstance(outcome.error, RETRYABLE):  # failed for now: the first such entry is named
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

    async def copy_of(self, write: Write, outcome: WriteResult) -> dict[str, Any] | None:
        """The server copy an entry left: the answer's body, else read back by id."""
        if outcome.resource is not None and outcome.resource.get("id"):
            return outcome.resource
        if outcome.id:
            return await self.session.read_back(outcome.resource_type or write.key.type, outcome.id)
        return None
