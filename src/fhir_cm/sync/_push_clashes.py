"""A case's push where the server moved on: copies edited by another system since the ledger's
(merged by field, or clashes recorded as conflicts for a person) and copies deleted there (read again
to be sure, then a conflict each). The state of one case's rounds lives here too, as the base the
sending (``_push_send``) and the rounds (``_push_case``) build on.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ..domain import Case
from ..errors import FhirCmError
from ..fhir import FhirError, InvalidResponse, ServerReason, TransientError, VersionConflict
from ..mapping import ResourceKey, case_plan
from ..store import LedgerEntry, add_conflict
from ._conflicts import REMOVED_ON_SERVER
from ._identity import read_existing
from ._merge import compare
from ._push_session import PushSession, failure_reason
from ._push_writes import Write, moved_on
from ._refusals import refusal, refusal_text
from ._report import PushReport

__all__ = ["RETRYABLE", "CaseClashes", "CaseFailed"]

RETRYABLE = (TransientError, InvalidResponse)
"""Failures a later round or push may get past."""


class CaseFailed(FhirCmError):
    """Ends a case's rounds: ``permanent`` for a person to look at, else a later push retries."""

    def __init__(self, reason: str, *, permanent: bool, server: ServerReason | None = None) -> None:
        super().__init__(reason)
        self.reason, self.permanent, self.server = reason, permanent, server


class CaseClashes:
    """One case's rounds' state, and what they do when the server's copy moved on or is gone."""

    def __init__(self, session: PushSession, case: Case, report: PushReport) -> None:
        self.session, self.case, self.report = session, case, report
        ledger = session.ledgers.get(case.id, {})
        self.bases: dict[ResourceKey, dict[str, Any]] = {k: e.server_copy for k, e in ledger.items() if e.server_copy}
        #: The base the copies are at: a reference in them by an absolute URL at another names another
        #: server's record (an outside party), which the case holds as such and a write leaves as written.
        self.own: tuple[str, ...] = (session.base,)
        for key, _, _ in case_plan(case, self.bases):
            if key not in self.bases and key in session.found:
                self.bases[key] = session.found[key]
                session.keep(case.id, [session.ledger_entry(key, case.id, session.found[key])])
        self.keep: dict[ResourceKey, tuple[dict[str, Any], frozenset[str]]] = {}
        #: Per key written with the server's edits kept: the case's own values of those elements and
        #: the version the edits were read at (``_merge.ancestor``: what the ledger records).
        self.untaken: dict[ResourceKey, tuple[dict[str, Any], frozenset[str], str | None]] = {}
        self.outcome: dict[ResourceKey, str] = {}
        self.conflict_retried = False
        self.deferred = False  # the last round held back an update naming a resource still to be created
        self.settled = False  # the last round left the server holding exactly what the case maps to

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
        if for_now and (failed := next((e for e in unread.values() if isinstance(e, RETRYABLE)), None)):
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

    def sent(self, writes: list[Write]) -> list[dict[str, Any]]:
        """What this round sent of the case: the values a server's message must not echo."""
        return [w.resource for w in writes]

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
