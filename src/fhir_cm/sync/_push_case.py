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

Three modules, one job each: the rounds and what each sends (here), a round on the wire and its
answers read (``_push_send``), and what a server that moved on or dropped a copy makes of the case
(``_push_clashes``, which also holds the rounds' state).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn


from .. import decimals
from ..domain import Case
from ..fhir import (
    a_resource,
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
from ..store import content_json
from ._foreign import foreign_update, is_foreign
from ._identity import rewrite_references
from ._limits import save_transaction_limit
from ._merge import keep_server
from ._parties import case_parties
from ._push_clashes import CaseFailed
from ._push_send import CaseSend
from ._push_session import PushSession, version_of
from ._push_writes import Write, on_the_wire
from ._refusals import refusal, refusal_text
from ._report import CaseFailure, PushReport

__all__ = ["MAX_ROUNDS", "CaseFailed", "push_case"]

#: Rounds per case: create, update what matched, one conflict retry, one transient retry.
MAX_ROUNDS = 5
#: The longest a server's ``Retry-After`` keeps a failed case's row waiting: a wrong header must not
#: park the outbox for days.
MAX_RETRY_AFTER = 3600.0


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


class _CasePush(CaseSend):
    """The rounds of one case's push."""

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
            self.case, session.version, session.system, self.bases, server_ids=stable, parties=moved, bases=self.own
        )
        leftover = [decimals.dumps(own) for own in moved]
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
                server, elements = self.keep[key]
                ours = {name: resource[name] for name in elements if name in resource}
                self.untaken[key] = (ours, elements, version_of(server))
                keep_server(resource, server, elements)
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
        refs = References(self.session.system, ids, bases=self.own)
        refs.know_all(k for k, _, _ in case_plan(self.case, self.bases))
        return refs
