"""A whole case ⇄ its FHIR resources, for R4 and R5.

Writing: every entity of the case becomes the resource its module describes. When a *base* (the
last known server copy) is given for a resource, the update writes only the fields the domain
changed, so what the adapter does not own survives and an unchanged case gives back exactly its
base. The update is a new resource that shares with its base what it did not change: neither is
changed in place afterwards (``clone`` one first), and the base is never changed by the update.

Reading: a set of resources (or Bundles) for one case becomes a Case. Reading is tolerant — missing
optional elements are fine, foreign codings and extensions are ignored — but what a case must have
cannot be made up; then :class:`UnreadableResourceError` says which resource lacks what.
"""

from __future__ import annotations

from functools import partial
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .. import decimals
from .. import terminology as T
from ..domain import Case, Contact, Goal, Need, Party, PartyKind, Referral, Stay, TeamMember
from ._base import FhirVersion, ResourceKey, UnreadableResourceError, check_version
from ._careplan import CARE_PLAN
from ._careteam import CARE_TEAM
from ._communication import COMMUNICATION
from ._condition import CONDITION
from ._encounter import ENCOUNTER
from ._episodeofcare import EPISODE_OF_CARE
from ._fields import Ctx, ResourceSpec
from ._goal import GOAL
from ._json import clone
from ._keys import careplan_key, careteam_key, episode_key, resource_key, task_key
from ._modifiers import modifier_problems
from ._refs import References, replace_references
from ._servicerequest import SERVICE_REQUEST
from ._task import TASK

__all__ = ["SPECS", "CaseReads", "case_plan", "case_to_resources", "map_case", "read_resource", "resources_to_case"]

#: The spec of every resource type a case maps to.
SPECS: dict[str, ResourceSpec] = {
    s.resource_type: s
    for s in (EPISODE_OF_CARE, CARE_PLAN, CARE_TEAM, CONDITION, GOAL, SERVICE_REQUEST, TASK, COMMUNICATION, ENCOUNTER)
}


def case_plan(case: Case, base_keys: Iterable[ResourceKey] = ()) -> list[tuple[ResourceKey, ResourceSpec, Any]]:
    """Which resource each part of the case becomes: ``(key, spec, entity)``, EpisodeOfCare first.

    A CareTeam is made when the case has a team, or when one is already on the server (it then
    stays, emptied, rather than silently disappearing).
    """
    plan: list[tuple[ResourceKey, ResourceSpec, Any]] = [
        (episode_key(case), EPISODE_OF_CARE, case),
        (careplan_key(case), CARE_PLAN, case),
    ]
    if case.team or careteam_key(case) in set(base_keys):
        plan.append((careteam_key(case), CARE_TEAM, case))
    plan += [(ResourceKey("Condition", n.id), CONDITION, n) for n in case.needs]
    plan += [(ResourceKey("Goal", g.id), GOAL, g) for g in case.goals]
    for r in case.referrals:
        plan += [(ResourceKey("ServiceRequest", r.id), SERVICE_REQUEST, r), (task_key(r), TASK, r)]
    plan += [(ResourceKey("Communication", c.id), COMMUNICATION, c) for c in case.contacts]
    plan += [(ResourceKey("Encounter", s.id), ENCOUNTER, s) for s in case.stays]
    return plan


def map_case(
    case: Case,
    version: str,
    identifier_system: str,
    base: Mapping[ResourceKey, Mapping[str, Any]] | None = None,
    server_ids: Mapping[ResourceKey, str] | None = None,
    *,
    parties: Mapping[str, str] | None = None,
    quick: bool = True,
    bases: Collection[str] | None = None,
) -> tuple[dict[ResourceKey, dict[str, Any]], References, dict[ResourceKey, str]]:
    """The resources of a case, the References that linked them, and the server ids known.

    ``parties``, ``bases``: see :func:`case_to_resources`. ``quick=False`` turns off the fields' quick proofs
    (``Field.written``), for tests that compare the two ways of updating.
    """
    v = check_version(version)
    base = {k if type(k) is ResourceKey else ResourceKey(*k): r for k, r in (base or {}).items()}
    ids = {k: r["id"] for k, r in base.items() if isinstance(r.get("id"), str) and r["id"]}
    ids.update({ResourceKey(*k): i for k, i in (server_ids or {}).items()})
    refs = References(identifier_system, ids, parties=parties, bases=bases)
    plan = case_plan(case, base)
    refs.know_all(k for k, _, _ in plan)
    ctx = Ctx(v, refs, case, frozenset(k for k, _, _ in plan), quick=quick)
    settle = bool(ids)
    out: dict[ResourceKey, dict[str, Any]] = {}
    for key, spec, entity in plan:
        if key in base:
            out[key] = spec.merge(_prepared(base[key], refs, settle), entity, ctx)
        else:
            resource = spec.build(entity, ctx, key.value)
            if key in ids:
                resource = {"resourceType": resource.pop("resourceType"), "id": ids[key], **resource}
            out[key] = resource
    return out, refs, ids


def _prepared(resource: Mapping[str, Any], refs: References, settle: bool) -> Mapping[str, Any]:
    """A base resource ready to be updated: as it is, but for anything other than plain JSON (dicts
    and lists) made plain and, when server ids are known, leftover ``urn:uuid:`` references settled.

    A ``urn:uuid:`` reference to a resource whose server id is known is a leftover of the
    transaction that created it (a server resolves them on the way in); sending it again would
    point at an entry the new transaction may not have, so it becomes ``Type/id``. One
    serialisation tells whether either is needed, far cheaper than copying: the update is made
    without copying the base first (it shares what it does not change, see :func:`set_in`).
    """
    try:
        raw = decimals.dumps(resource)
    except TypeError:
        resource, raw = clone(resource), b"urn:uuid:"  # other mappings, models…: made plain
    if not (settle and b"urn:uuid:" in raw):
        return resource
    if type(resource) is not dict:
        resource = decimals.loads(raw)  # plain JSON, so that every reference in it is found

    def settled(reference: dict[str, Any]) -> str | None:
        if not reference["reference"].startswith("urn:uuid:"):
            return None
        key = refs.resolve(reference)
        return refs.reference(key)["reference"] if key is not None and refs.server_id(key) else None

    out: dict[str, Any] = replace_references(resource, settled)
    return out


def case_to_resources(
    case: Case,
    version: str,
    identifier_system: str,
    base: Mapping[ResourceKey, Mapping[str, Any]] | None = None,
    *,
    server_ids: Mapping[ResourceKey, str] | None = None,
    parties: Mapping[str, str] | None = None,
    bases: Collection[str] | None = None,
) -> dict[ResourceKey, dict[str, Any]]:
    """Every FHIR resource of ``case``, by key (``(type, business identifier value)``).

    ``base`` holds the last known server copy of resources already on a server (keyed the same way;
    see :func:`resource_key`); each is updated in place of a fresh build, changing only what the
    domain changed. ``server_ids`` names server ids for resources with no base copy. References
    between the case's resources are ``Type/id`` where the id is known, else ``urn:uuid:``.
    ``parties`` maps a party's ``Type/id`` as the case spells it to the one a server gave it (a
    patient matched or created by identifier): the references the mapping writes to it, and reads
    in ``base``, are the server's (an extension's value excepted: the sync layer rewrites those).
    Resources in ``base`` that the case no longer has (a removed goal) are not returned.
    ``bases``: those the copies in ``base`` came from (see :func:`resources_to_case`): a link in
    them by an absolute URL at another base is another server's resource, kept as it is.

    ``base`` is left as it is. An updated resource is a new dict, but its elements the case did not
    change are the base's own objects, not copies (copying every base first was half the cost of an
    update): to change one in place, clone it first.
    """
    return map_case(case, version, identifier_system, base, server_ids, parties=parties, bases=bases)[0]


# --- reading ---------------------------------------------------------------------------------------


def _flatten(resources: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    for res in resources:
        if not isinstance(res, Mapping):
            continue
        if res.get("resourceType") == "Bundle":
            for entry in res.get("entry") or ():
                inner = entry.get("resource") if isinstance(entry, Mapping) else None
                if isinstance(inner, Mapping):
                    yield inner, entry.get("fullUrl")
        else:
            yield res, None


def _where(resource: Mapping[str, Any], index: int) -> str:
    rid = resource.get("id")
    return (
        f"{resource.get('resourceType')}/{rid}"
        if isinstance(rid, str)
        else f"{resource.get('resourceType')} #{index + 1}"
    )


def _summary(exc: ValidationError) -> str:
    """Pydantic errors without the input values (which may be personal data)."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _entity(model: type[BaseModel], values: dict[str, Any], where: str) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise UnreadableResourceError(
            f"{where} cannot be read as a {model.__name__.lower()}: {_summary(exc)}"
        ) from None


def read_resource(
    resource: Mapping[str, Any],
    version: str,
    identifier_system: str,
    references: References | None = None,
) -> dict[str, Any]:
    """The domain values one resource holds, by the name of the domain field, plus its ``id``.

    Tolerant and partial: an absent or unreadable element is simply missing from the result (a
    ServiceRequest's values lack the status reason its Task holds; an EpisodeOfCare's lack the plan
    summary its CarePlan holds). ``references`` resolves references to the case's other resources;
    without it only references to parties are read.
    """
    rtype = resource.get("resourceType")
    spec = SPECS.get(rtype) if isinstance(rtype, str) else None
    if spec is None:
        raise UnreadableResourceError(f"{rtype} is not a resource type a case maps to")
    if problems := modifier_problems(resource):
        raise UnreadableResourceError("; ".join(problems))
    refs = references or References(identifier_system)
    values = spec.read(resource, Ctx(check_version(version), refs))
    key = resource_key(resource, identifier_system)
    if key is not None:
        values["id"] = key.value
    return values


class CaseReads:
    """What reading a case's resources found in each of them, for reading the same objects again.

    A pull merging a case reads it twice — as the server last had it (the ledger's copies) and as it
    has it now (the same copies but the few changed) — and again for each try when a resource is in
    the way (``sync``'s ``CaseReader.isolate``). Reading the resources both share once and reusing
    what they said halves the work. What a resource says depends on nothing but the resource (the
    same object: copies are never changed in place, see :func:`case_to_resources`) and the
    references the set it is read with resolves: so what was found is kept per set of references
    (each resource's key, server id and fullUrl, in order, and the bases), and a read with another
    set (a new resource the others may refer to) reads afresh; a referral, read from its
    ServiceRequest with its Task and the case manager, is kept with those (the same objects, or it is
    read afresh). A resource that does not read is not kept (the read raises, as ever). Lives as
    long as one caller's reads of one case (it holds the resources it read). The cases read with one
    share the entities their common resources make: change neither in place.
    """

    def __init__(self) -> None:
        self._found: dict[Hashable, dict[tuple[int, Hashable], _Found]] = {}
        self._keys: dict[tuple[int, str], tuple[Mapping[str, Any], ResourceKey | None]] = {}

    def found(self, references: Hashable) -> dict[tuple[int, Hashable], _Found]:
        """What was read with this set of ``references``: ``(id(resource), what) → (resource, result,
        the other objects it was read with)`` (those are held, so their ids name no other object
        meanwhile)."""
        return self._found.setdefault(references, {})

    def key(self, resource: Mapping[str, Any], system: str) -> ResourceKey | None:
        """``resource_key(resource, system)``, worked out once per resource."""
        hit = self._keys.get((id(resource), system))
        if hit is not None and hit[0] is resource:
            return hit[1]
        key = resource_key(resource, system)
        self._keys[(id(resource), system)] = (resource, key)
        return key


#: What ``CaseReads`` keeps of one read: the resource, what it gave, the other objects it was read with.
_Found = tuple[Mapping[str, Any], Any, tuple[Any, ...]]


class _Reader:
    """Reads one case out of a set of resources."""

    def __init__(
        self,
        resources: Iterable[Mapping[str, Any]],
        version: FhirVersion,
        system: str,
        bases: Collection[str] | None = None,
        reads: CaseReads | None = None,
    ) -> None:
        self.version = version
        self.system = system
        self.refs = References(system, bases=bases)
        self.by_type: dict[str, list[tuple[ResourceKey, Mapping[str, Any], str]]] = {}
        known: list[tuple[ResourceKey, str | None, str | None]] = []
        for index, (res, full_url) in enumerate(_flatten(resources)):
            key = reads.key(res, system) if reads is not None else resource_key(res, system)
            if key is None and isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
                key = ResourceKey(str(res.get("resourceType")), full_url.removeprefix("urn:uuid:"))
            if key is None:
                continue
            server_id = res.get("id") if isinstance(res.get("id"), str) else None
            self.refs.know(key, server_id=server_id, full_url=full_url)
            if reads is not None:
                known.append((key, server_id, full_url if isinstance(full_url, str) else None))
            self.by_type.setdefault(key.type, []).append((key, res, _where(res, index)))
        self.ctx = Ctx(version, self.refs)
        signature = (version, self.refs.bases, tuple(known))
        self.found = reads.found(signature) if reads is not None else None

    def _kept(
        self, res: Mapping[str, Any], what: Hashable, read: Callable[[], Any], along: tuple[Any, ...] = ()
    ) -> Any:
        """``read()``, or what it gave for this same resource before (see ``CaseReads``); ``along``:
        the other objects the read takes (the same ones, or it reads afresh)."""
        if self.found is None:
            return read()
        hit = self.found.get((id(res), what))
        if hit is not None and hit[0] is res and len(hit[2]) == len(along):
            if all(a is b for a, b in zip(hit[2], along, strict=True)):
                return hit[1]
        result = read()
        self.found[(id(res), what)] = (res, result, along)
        return result

    def values(self, res: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
        """The domain values of ``res``; with ``where``, first insist it holds nothing the domain cannot.

        A modifier the mapping does not understand (``_modifiers.py``) makes any resource unreadable.
        A new dict each time: callers change it.
        """
        return dict(self._kept(res, where is not None, lambda: self._values(res, where)))

    def _values(self, res: Mapping[str, Any], where: str | None) -> dict[str, Any]:
        spec = SPECS[str(res["resourceType"])]
        problems = modifier_problems(res)
        if where is not None:
            problems += spec.unreadable(res, self.ctx)
        if problems:
            said = "; ".join(problems)
            raise UnreadableResourceError(f"{where}: {said}" if where is not None else said)
        return spec.read(res, self.ctx)

    def one(self, rtype: str, derived_value: str, episode: ResourceKey) -> Mapping[str, Any] | None:
        """The case's CarePlan or CareTeam: ours by identifier, else the one naming the episode, else the only one."""
        found = self.by_type.get(rtype, [])
        for key, res, _ in found:
            if key.value == derived_value:
                return res
        for _, res, _ in found:
            links = [*(res.get("supportingInfo") or ()), *(res.get("episodeOfCare") or ())]
            if any(self.refs.resolve(r) == episode for r in links):
                return res
        return found[0][1] if len(found) == 1 else None

    def case(self) -> Case:
        episodes = self.by_type.get("EpisodeOfCare", [])
        if len(episodes) != 1:
            raise UnreadableResourceError(f"a case needs exactly one EpisodeOfCare; found {len(episodes)}")
        key, eoc, where = episodes[0]
        v = self.values(eoc, where)
        needed = {"programme": "type", "status": "status", "patient": "patient", "period_start": "period.start"}
        missing = [element for name, element in needed.items() if name not in v]
        if missing:
            raise UnreadableResourceError(f"{where} lacks what a case needs: {', '.join(missing)}")
        start = v.pop("period_start")
        end = v.pop("period_end", None)
        values: dict[str, Any] = {**v, "id": key.value, "period": {"start": start, "end": end}}
        plan = self.one("CarePlan", f"{key.value}-careplan", key)
        if plan is not None and (summary := self.values(plan).get("plan_summary")):
            values["plan_summary"] = summary
        team = self.one("CareTeam", f"{key.value}-careteam", key)
        if team is not None:
            values["team"] = [m.model_dump() for m in self.values(team).get("team", []) if isinstance(m, TeamMember)]
        values["needs"] = [self.entity(Need, k, r, w) for k, r, w in self.by_type.get("Condition", [])]
        values["goals"] = [self.entity(Goal, k, r, w) for k, r, w in self.by_type.get("Goal", [])]
        values["referrals"] = self.referrals(v.get("case_manager"))
        values["contacts"] = [self.entity(Contact, k, r, w) for k, r, w in self.by_type.get("Communication", [])]
        values["stays"] = [self.entity(Stay, k, r, w) for k, r, w in self.by_type.get("Encounter", [])]
        try:
            return Case.model_validate(values)
        except ValidationError as exc:
            raise UnreadableResourceError(f"the resources do not make a valid case: {_summary(exc)}") from None

    def entity(self, model: type[BaseModel], key: ResourceKey, res: Mapping[str, Any], where: str) -> Any:
        return self._kept(
            res, (model, key), lambda: _entity(model, {**self.values(res, where), "id": key.value}, where)
        )

    def referrals(self, case_manager: Party | None) -> list[Referral]:
        """The ServiceRequests with their Tasks. The requester both carry is the case manager's unless
        the referral has one of its own (derived on write), so only a requester other than the case
        manager is the referral's: what was written reads back as it was."""
        tasks: dict[ResourceKey, tuple[Mapping[str, Any], str]] = {}
        for _, candidate, place in self.by_type.get("Task", []):
            focus = self.refs.resolve(candidate.get("focus"))
            if focus is not None and focus.type == "ServiceRequest":
                tasks.setdefault(focus, (candidate, place))
        out = []
        for key, sr, where in self.by_type.get("ServiceRequest", []):
            task = tasks.get(key)
            along = (task[0] if task is not None else None, case_manager)
            out.append(
                self._kept(sr, (Referral, key), partial(self.referral, key, sr, where, task, case_manager), along)
            )
        return out

    def referral(
        self,
        key: ResourceKey,
        sr: Mapping[str, Any],
        where: str,
        task: tuple[Mapping[str, Any], str] | None,
        case_manager: Party | None,
    ) -> Referral:
        """One ServiceRequest with its Task (if found), as the referral they make."""
        v = self.values(sr)
        requester = self.refs.read_party(
            (task[0] if task is not None else sr).get("requester"),
            (PartyKind.PRACTITIONER, PartyKind.ORGANISATION),
        )
        if requester is not None and requester != case_manager:
            v["requester"] = requester
        if task is not None:
            v.update(self.values(*task))
        else:
            status = T.domain_value_of_code("referral-status-servicerequest", sr.get("status"))
            if status is not None:
                v["status"] = status
        referral: Referral = _entity(Referral, {**v, "id": key.value}, where)
        return referral


def resources_to_case(
    resources: Iterable[Mapping[str, Any]],
    version: str,
    identifier_system: str,
    *,
    bases: Collection[str] | None = None,
    reads: CaseReads | None = None,
) -> Case:
    """The Case that one case's resources (or Bundles of them) describe.

    Needs exactly one EpisodeOfCare, with ``status``, a ``type`` that names a programme (our coding,
    or an episodeofcare-type code the ConceptMap recognises), ``patient`` (a Patient reference) and
    ``period.start`` (or a dated ``statusHistory``); a ``statusHistory`` that keeps only past statuses
    is completed with the current one. Every Condition, Goal, ServiceRequest (with its
    Task, found by ``focus``), Communication and Encounter in the set becomes part of the case.

    ``bases``: those the resources came from (a stored copy's source; none for a file's, whose
    references at its own base the import made relative). A link by an absolute URL at another base
    (a CarePlan's ``https://other.example/fhir/Goal/x``) names another server's resource, not the
    case's own: it links nothing, and stays in the resource as written. ``None``: any base.

    ``reads``: what earlier reads of the same resource objects found, kept for reading them again
    (see ``CaseReads``).
    """
    return _Reader(resources, check_version(version), identifier_system, bases, reads).case()
