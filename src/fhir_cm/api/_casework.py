"""Reading and changing one case under the access rules, optimistic concurrency and the audit log.

Every change goes the same way: load the case in a write transaction, check the caller may see it
and that ``If-Match`` (if sent) names its current revision, apply the change to a copy, validate
the whole case again, ``save_case`` it (which queues it for pushing in the same transaction) and
write the audit row in that transaction too. Without ``If-Match`` a change that lost a race is
simply applied again to the newer case (it is a small, targeted edit); with it, the client is
told (412) to reload — unless it was ``If-Match: *``, which asks only that the case exist.

``If-Match`` is a list (RFC 9110, 13.1.1): ``*``, or entity tags of which one must name the current
revision. A tag matches as ``"<revision>"`` (the case's ETag) or ``W/"<revision>"`` (what FHIR
clients send, weak tags being FHIR's; HAPI takes both): a revision is one exact state of the case,
so a weak tag of it names nothing else. Anything else in the list (unquoted, another form, too many
digits) matches nothing; a list in which nothing matches is a 412, never a 500.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from pydantic import ValidationError
from starlette.responses import Response

from fhir_cm.domain import Breach, Case, Contact, Goal, Need, Plausibility, Referral, Stay, TeamMember, new_breaches
from fhir_cm.store import (
    CaseRecord,
    StaleRevision,
    Store,
    UnreadableCase,
    get_case_record,
    record_audit,
    keep_case_record,
    save_case_record,
)

from ._access import can_see, may_see_unreadable
from ._auth import Principal
from ._parts import CaseParts
from ._case_json import CaseJson
from ._views import Listed, ViewCache, changes
from ._problems import (
    ConflictProblem,
    FieldError,
    InvalidInput,
    NotFoundProblem,
    PreconditionFailed,
    UnreadableProblem,
    field_errors,
)

__all__ = [
    "Edited",
    "Work",
    "add_entity",
    "audit_reads",
    "check_new_id",
    "edit_case",
    "entity_fields",
    "etag",
    "find",
    "listed",
    "load_case",
    "patched",
    "rebuild",
    "refuse_breaches",
    "replace",
    "respond",
    "sent_fields",
    "shown_audited",
    "update_entity",
]

T = TypeVar("T")
#: The entities a case holds in its lists; each has an ``id`` unique within the case.
E = TypeVar("E", bound=Need | Goal | Referral | TeamMember | Contact | Stay)
_ATTEMPTS = 3
_ETAG = re.compile(r'^\s*(?:W/)?"(\d{1,18})"\s*$')
#: How a breach of the domain's rules is named to the client (default: its path in the case).
FieldNamer = Callable[[Breach], str]


def etag(revision: int) -> str:
    """The ETag of a case revision."""
    return f'"{revision}"'


def _pins_revision(if_match: str | None) -> bool:
    """Whether ``If-Match`` names revisions (``*`` asks only that the case exist)."""
    return if_match is not None and if_match.strip() != "*"


def _matches(if_match: str | None, revision: int) -> bool:
    if if_match is None or not _pins_revision(if_match):
        return True
    for candidate in if_match.split(","):
        m = _ETAG.match(candidate)
        if m and int(m.group(1)) == revision:
            return True
    return False


def rebuild(case: Case, field: str, **changes: Any) -> Case:
    """A new case with ``changes`` applied, validated whole; a failure is a 422 naming ``field``."""
    try:
        return Case.model_validate({**case.model_dump(), **changes})
    except ValidationError as exc:
        raise InvalidInput(
            "the change would make the case invalid", errors=field_errors(exc.errors(), hint=field)
        ) from None


def refuse_breaches(before: Case | None, after: Case, rules: Plausibility, *, name: FieldNamer | None = None) -> None:
    """422 naming every field where ``after`` breaks a rule of what can be true that ``before`` kept.

    Only what the change brings in is refused: a case imported with a breach stays workable.
    """
    breaches = new_breaches(before, after, rules)
    if breaches:
        named = {(name(b) if name else b.field, b.message): None for b in breaches}  # one per field and reason
        errors = [FieldError(field=field, message=message) for field, message in named]
        raise InvalidInput("the change records something that cannot be true; see errors", errors=errors)


def entity_fields(field: str, entity_id: str) -> FieldNamer:
    """Breaches of the entity a request sent (``contacts``, its id) named as fields of that body ("date")."""

    def name(breach: Breach) -> str:
        parts = breach.field.split(".")
        if parts[0] == field and breach.entity == entity_id and len(parts) > 2:
            return ".".join(parts[2:])
        return breach.field

    return name


def load_case(
    store: Store, principal: Principal, case_id: str, today: dt.date, *, request_id: str | None
) -> CaseRecord:
    """The case, if the caller may see it (404 otherwise, existing or not); the read is audited."""
    with store.lookup() as session, _unreadable_as_problem(principal):
        record = get_case_record(session, case_id, cache=store.cases)
    if record is None or not can_see(principal, record.case, today):
        raise NotFoundProblem(f"no case {case_id}")
    store.audit.record(principal=principal.id, action="read", case_ids=[case_id], request_id=request_id)
    return record


@contextmanager
def _unreadable_as_problem(principal: Principal) -> Iterator[None]:
    """A stored case this version cannot read: 409 naming `fhir-cm check` to whoever could see it, the
    404 of a case that does not exist to anyone else (ids cannot be probed)."""
    try:
        yield
    except UnreadableCase as exc:
        if not may_see_unreadable(principal, exc):
            raise NotFoundProblem(f"no case {exc.case_id}") from None
        raise UnreadableProblem(str(exc)) from None


def audit_reads(
    store: Store, principal: Principal, case_ids: Iterable[str | None], *, action: str, request_id: str | None
) -> None:
    """Record that ``principal`` saw these cases (a list, a caseload, an outcome computation)."""
    store.audit.record(principal=principal.id, action=action, case_ids=case_ids, request_id=request_id)


@dataclass(frozen=True)
class Edited(Generic[T]):
    """What a change returned, and the stored case it produced."""

    result: T
    record: CaseRecord

    @property
    def revision(self) -> int:
        """The case's revision after the change (its new ETag)."""
        return self.record.revision


def edit_case(
    store: Store,
    principal: Principal,
    case_id: str,
    change: Callable[[Case], tuple[Case, T]],
    *,
    today: dt.date,
    if_match: str | None,
    action: str,
    detail: str,
    request_id: str | None,
    rules: Plausibility | None = None,
    name: FieldNamer | None = None,
) -> Edited[T]:
    """Apply ``change`` (old case → new case and a result) to a visible case and save it, audited.

    With ``rules``, a change that would record something that cannot be true (see
    ``fhir_cm.domain.Plausibility``) is refused with a 422 naming the fields (``name`` words them).
    """
    for _ in range(_ATTEMPTS):
        try:
            with store.session() as session:
                with _unreadable_as_problem(principal):
                    record = get_case_record(session, case_id)
                if record is None or not can_see(principal, record.case, today):
                    raise NotFoundProblem(f"no case {case_id}")
                if not _matches(if_match, record.revision):
                    raise PreconditionFailed(
                        f"case {case_id} is at revision {record.revision}: reload it and apply the change again",
                        headers={"ETag": etag(record.revision)},
                    )
                case, result = change(record.case)
                if rules is not None:
                    refuse_breaches(record.case, case, rules, name=name)
                saved = save_case_record(session, case, expected_revision=record.revision)
                if saved.revision != record.revision:
                    record_audit(
                        session,
                        principal=principal.id,
                        action=action,
                        case_ids=[case_id],
                        detail=detail,
                        request_id=request_id,
                    )
            # Committed: this process's views and façade, catching up with the change, find it decoded.
            keep_case_record(store.cases, saved)
            return Edited(result, saved)
        except StaleRevision:
            if _pins_revision(if_match):
                raise PreconditionFailed(
                    f"case {case_id} changed meanwhile: reload it and apply the change again"
                ) from None
    raise ConflictProblem(f"case {case_id} keeps changing under this request; try again")


def find(items: Iterable[E], entity_id: str, what: str, case_id: str) -> E:
    """The entity of a case with this id (404 if the case has none)."""
    for item in items:
        if item.id == entity_id:
            return item
    raise NotFoundProblem(f"case {case_id} has no {what} {entity_id}")


def replace(items: Iterable[E], updated: E) -> list[E]:
    """The list with the entity of the same id swapped for ``updated``."""
    return [updated if item.id == updated.id else item for item in items]


def check_new_id(case: Case, entity_id: str, what: str) -> None:
    """Refuse (409) an entity id already used in the case (ids are unique within a case)."""
    used = {case.id} | {
        e.id for group in (case.needs, case.goals, case.referrals, case.team, case.contacts, case.stays) for e in group
    }
    if entity_id in used:
        raise ConflictProblem(f"id {entity_id} is already used in case {case.id}; choose another {what} id or omit it")


@dataclass(frozen=True)
class Work:
    """One request's view of the cases: who asks, on which day, under which ``If-Match`` and rules."""

    store: Store
    principal: Principal
    today: dt.date
    request_id: str | None
    if_match: str | None
    rules: Plausibility | None = None
    #: The app's kept caseload and outcome results (``_views``); a Work made by hand gets its own.
    views: ViewCache = field(default_factory=ViewCache)
    parts: CaseParts = field(default_factory=CaseParts)
    #: The app's kept JSON of cases as the read routes answer them (``_case_json``).
    case_json: CaseJson = field(default_factory=lambda: CaseJson(0))

    def load(self, case_id: str) -> CaseRecord:
        """The visible case (404 otherwise); the read is audited."""
        return load_case(self.store, self.principal, case_id, self.today, request_id=self.request_id)

    def edit(
        self,
        case_id: str,
        change: Callable[[Case], tuple[Case, T]],
        *,
        action: str,
        detail: str,
        name: FieldNamer | None = None,
    ) -> Edited[T]:
        """Apply a change to the visible case, saved and audited, held to the rules (see ``edit_case``)."""
        return edit_case(
            self.store,
            self.principal,
            case_id,
            change,
            today=self.today,
            if_match=self.if_match,
            action=action,
            detail=detail,
            request_id=self.request_id,
            rules=self.rules,
            name=name,
        )


def patched(entity: E, changes: dict[str, Any], field: str) -> E:
    """A copy of a case entity with ``changes`` applied and validated (422 naming the field otherwise)."""
    try:
        return cast(E, type(entity).model_validate({**entity.model_dump(), **changes}))
    except ValidationError as exc:
        raise InvalidInput("the change is not valid", errors=field_errors(exc.errors(), hint=field)) from None


#: A rule an entity's change must keep that only the whole case can tell (raises a Problem).
EntityCheck = Callable[[Case, E], None]


def add_entity(
    work: Work,
    case_id: str,
    field: str,
    entity: E,
    what: str,
    *,
    check: EntityCheck[E] | None = None,
    fill: Callable[[Case, E], E] | None = None,
) -> Edited[E]:
    """Append a need, goal, referral, team member, contact or stay to a case (``check``: held to the
    case; ``fill``: what the entity takes from the case, e.g. a referral's requester)."""
    entity_id: str = entity.id

    def change(case: Case) -> tuple[Case, E]:
        check_new_id(case, entity_id, what)
        if check is not None:
            check(case, entity)
        added = entity if fill is None else fill(case, entity)
        return rebuild(case, field, **{field: [*getattr(case, field), added]}), added

    return work.edit(case_id, change, action="add", detail=f"{field}:{entity_id}", name=entity_fields(field, entity_id))


def sent_fields(changes: Mapping[str, Any]) -> str:
    """The fields a PATCH sent, as its audit row names them (``fields:a,b``)."""
    return "fields:" + ",".join(sorted(changes))


def update_entity(
    work: Work,
    case_id: str,
    field: str,
    entity_id: str,
    what: str,
    update: Callable[[E], E],
    *,
    action: str = "update",
    check: EntityCheck[E] | None = None,
    what_changed: str | None = None,
) -> Edited[E]:
    """Replace one entity of a case by ``update(current)``; 404 if the case has no such entity.
    ``check(case, current)`` may refuse the change first. ``what_changed`` (the fields sent, the status
    moved to) follows the entity in the audit row's detail: the case keeps only where the entity is now,
    so the audit is what says who moved it where."""

    def change(case: Case) -> tuple[Case, E]:
        items = getattr(case, field)
        current = find(items, entity_id, what, case.id)
        if check is not None:
            check(case, current)
        updated = update(current)
        return rebuild(case, field, **{field: replace(items, updated)}), updated

    detail = f"{field}:{entity_id}" if what_changed is None else f"{field}:{entity_id}:{what_changed}"
    return work.edit(case_id, change, action=action, detail=detail, name=entity_fields(field, entity_id))


def views(work: Work) -> ViewCache:
    """The app's cache of results computed over every visible case (caseload, outcomes)."""
    return work.views


def shown_audited(
    work: Work, key: Hashable, compute: Callable[[], tuple[bytes, Mapping[str, object]]], *, action: str
) -> bytes:
    """A view naming cases (the caseload, the worklist): ``compute()``'s body, kept until a case changes
    (``ViewCache``), and the cases it names (``compute()``'s mapping: case id → what it shows of the case)
    audited — one row each; or, shown to the same caller again unchanged, one row pointing at the request
    that showed it (``unchanged:<request>``); or, shown again changed, rows for the cases new to it or shown
    differently since the caller's last showing whose rows list every case, a row for each case that left
    it (``left:<request>``) and one row pointing at that showing for the rest (``changed:<request>``)."""
    p = work.principal
    shown = views(work).showing(work.store, key, compute, viewer=p.id, request_id=work.request_id)
    body, cases = shown.value
    if shown.shown_in is not None:
        work.store.audit.record(
            principal=p.id,
            action=action,
            case_ids=[None],
            detail=f"unchanged:{shown.shown_in}",
            request_id=work.request_id,
        )
        return body
    base = shown.base
    moved = changes(base, cases)
    if moved is None or base is None:
        audit_reads(work.store, p, cases, action=action, request_id=work.request_id)
        shown.remember(None if work.request_id is None else Listed(work.request_id, cases))
    else:
        work.store.audit.record_each(
            principal=p.id,
            action=action,
            by_detail={
                None: moved.shown,
                f"changed:{base.request_id}": [None],
                f"left:{base.request_id}": moved.left,
            },
            request_id=work.request_id,
        )
        shown.remember(None)
    return body


def respond(edited: Edited[T], response: Response) -> T:
    """What a change returned, with the case's new revision as the response's ``ETag``."""
    response.headers["ETag"] = etag(edited.revision)
    return edited.result


def listed(work: Work, case_id: str, field: str, response: Response) -> list[Any]:
    """One of a visible case's entity lists, with the case's revision as ``ETag`` (the read is audited)."""
    record = work.load(case_id)
    response.headers["ETag"] = etag(record.revision)
    return list(getattr(record.case, field))
