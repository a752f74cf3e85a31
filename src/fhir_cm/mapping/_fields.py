"""The machinery every resource module is built from: a resource is a table of fields.

A :class:`Field` knows one domain value, where it lives in a FHIR JSON object, how to read it back
and how to write it. A :class:`Shape` is a tuple of fields over one JSON object (a resource, or an
item such as a CareTeam participant). The same table then serves three jobs:

- ``write``: build a fresh object from the domain;
- ``merge``: start from a base copy and write only the fields whose value differs from what the
  base already says — everything else in the base (extensions, narrative, other systems' codings,
  unknown elements) is never touched;
- ``read``: the domain values an object holds (what cannot be read is simply not returned).

Writers are themselves careful with lists: an item the domain does not own (a foreign coding, an
extension of another URL, a reference to something outside the case) keeps its place.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from .. import terminology as T
from ..domain import Party, PartyKind
from ._base import FhirVersion, ResourceKey
from ._json import PathT, clone, get_in, identity, merge_list, read_date, set_in
from ._refs import References, party_reference, read_party

if TYPE_CHECKING:
    from ..domain import Case

__all__ = [
    "Ctx",
    "Field",
    "ResourceSpec",
    "Shape",
    "attr",
    "code",
    "codings_at",
    "concept",
    "concept_items",
    "date",
    "extension_item",
    "extension_items",
    "items",
    "model_items",
    "party",
    "party_item",
    "ref",
    "refs",
    "text",
]

Getter = Callable[[Any, "Ctx"], Any]


@dataclass(slots=True)
class Ctx:
    """What a field may need besides its own value: version, references, and the case it belongs to."""

    version: FhirVersion
    refs: References
    case: Case | None = None
    produced: frozenset[ResourceKey] = field(default_factory=frozenset)

    @property
    def system(self) -> str:
        return self.refs.identifier_system

    @property
    def owner(self) -> Case:
        """The case being written (fields derived from the case need it; reading has none)."""
        if self.case is None:
            raise RuntimeError("this field is written from its case, and no case was given")
        return self.case


# --- fields and shapes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """One domain value and its home in a FHIR object.

    ``same(obj, value, ctx)`` says whether ``obj`` already holds ``value`` (default: ``read == value``,
    where an absent element reads as ``default`` — the domain's own default, so a resource that never
    said e.g. an acuity is not rewritten to say the default); ``derived`` fields are written from the
    case but never read back into the entity.
    """

    name: str
    get: Getter
    read: Callable[[Mapping[str, Any], Ctx], Any]
    write: Callable[[dict[str, Any], Any, Ctx], None]
    same: Callable[[Mapping[str, Any], Any, Ctx], bool] | None = None
    derived: bool = False
    default: Any = None
    #: A list of references to the case's own resources, kept in step even on others' resources.
    link: bool = False
    #: Says what an object holds that this field cannot read (e.g. a status code no map knows).
    unreadable: Callable[[Mapping[str, Any]], str | None] | None = None

    def holds(self, obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        if self.same is not None:
            return self.same(obj, value, ctx)
        held = self.read(obj, ctx)
        return bool((self.default if held is None else held) == value)


@dataclass(frozen=True, slots=True)
class Shape:
    """A table of fields over one JSON object."""

    fields: tuple[Field, ...]

    def write(self, obj: dict[str, Any], entity: Any, ctx: Ctx) -> dict[str, Any]:
        for f in self.fields:
            f.write(obj, f.get(entity, ctx), ctx)
        return obj

    def merge(self, obj: dict[str, Any], entity: Any, ctx: Ctx, *, foreign: bool = False) -> dict[str, Any]:
        """Write into ``obj`` only the fields whose domain value it does not already hold.

        On a ``foreign`` object (a resource another system created) fields derived from the case
        (status, subject, requester, narrative…) are left as that system wrote them; only what the
        domain reads from it, and the links between the case's resources, are kept in step.
        """
        for f in self.fields:
            if foreign and f.derived and not f.link:
                continue
            value = f.get(entity, ctx)
            if not f.holds(obj, value, ctx):
                f.write(obj, value, ctx)
        return obj

    def changed(self, obj: Mapping[str, Any], entity: Any, ctx: Ctx) -> list[str]:
        """Names of the fields ``obj`` does not hold as ``entity`` has them."""
        return [f.name for f in self.fields if not f.holds(obj, f.get(entity, ctx), ctx)]

    def unreadable(self, obj: Mapping[str, Any]) -> list[str]:
        """What ``obj`` holds that the domain cannot (it would otherwise read as absent, i.e. a default)."""
        return [msg for f in self.fields if f.unreadable is not None and not f.derived and (msg := f.unreadable(obj))]

    def read(self, obj: Mapping[str, Any], ctx: Ctx) -> dict[str, Any]:
        """The domain values ``obj`` holds; a value that is absent or unreadable is left out."""
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.derived:
                continue
            value = f.read(obj, ctx)
            if value is not None:
                out[f.name] = value
        return out


def attr(name: str) -> Getter:
    return lambda entity, ctx: getattr(entity, name)


def items(
    name: str,
    path: PathT,
    *,
    decode: Callable[[Mapping[str, Any], Ctx], Any],
    encode: Callable[[Any, Ctx], Any],
    get: Getter | None = None,
    many: bool = True,
    ident: Callable[[Any], Hashable] = identity,
    update: Callable[[Any, Any, Ctx], Any] | None = None,
    same: Callable[[Mapping[str, Any], Any, Ctx], bool] | None = None,
    derived: bool = False,
    default: Any = None,
) -> Field:
    """A value held by some items of the list at ``path`` (one item, or ``many``)."""

    def read(obj: Mapping[str, Any], ctx: Ctx) -> Any:
        values = [v for i in (get_in(obj, path) or ()) if isinstance(i, dict) and (v := decode(i, ctx)) is not None]
        return values if many else (values[0] if values else None)

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        new = list(value or ()) if many else ([] if value is None else [value])
        old = get_in(obj, path)
        if not old:
            set_in(obj, path, [encode(v, ctx) for v in new])
            return
        merged = merge_list(
            old,
            new,
            decode=lambda i: decode(i, ctx) if isinstance(i, dict) else None,
            encode=lambda v: encode(v, ctx),
            ident=ident,
            update=(lambda i, v: update(i, v, ctx)) if update is not None else None,
        )
        set_in(obj, path, merged)

    return Field(name, get or attr(name), read, write, same, derived, default)


# --- primitives ------------------------------------------------------------------------------------


def text(name: str, path: PathT, *, get: Getter | None = None, derived: bool = False) -> Field:
    """A string."""

    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        value = get_in(obj, path)
        return value if isinstance(value, str) and value else None

    return Field(name, get or attr(name), read, lambda obj, v, ctx: set_in(obj, path, v), derived=derived)


def date(name: str, path: PathT, *, get: Getter | None = None, derived: bool = False) -> Field:
    """A day, written as a FHIR date (which every date and dateTime element accepts)."""
    return Field(
        name,
        get or attr(name),
        lambda obj, ctx: read_date(get_in(obj, path)),
        lambda obj, v, ctx: set_in(obj, path, v.isoformat() if v is not None else None),
        derived=derived,
    )


# --- codes -----------------------------------------------------------------------------------------


def code(name: str, path: PathT, map_name: str, *, get: Getter | None = None, derived: bool = False) -> Field:
    """A ``code`` element (a status) whose value comes from a ConceptMap."""

    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        return T.domain_value_of_code(map_name, get_in(obj, path))

    def same(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        if value is None:
            return get_in(obj, path) is None
        return bool(get_in(obj, path) == T.code(map_name, value) or read(obj, ctx) == value)

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        set_in(obj, path, T.code(map_name, value) if value is not None else None)

    def unreadable(obj: Mapping[str, Any]) -> str | None:
        held = get_in(obj, path)
        if held is None or T.domain_value_of_code(map_name, held) is not None:
            return None
        return f"{'.'.join(map(str, path))} {held!r} has no counterpart in the domain"

    return Field(name, get or attr(name), read, write, same, derived, unreadable=unreadable)


def _codes(codings: Iterable[Any] | None) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in codings or () if isinstance(c, Mapping)}


@functools.lru_cache(maxsize=4096)
def _sent_codes(map_name: str, value: str, own: bool) -> frozenset[tuple[Any, Any]]:
    return frozenset(_codes(T.codings(map_name, value, own=own)))


def _holds_concept(concept: Any, map_name: str, value: Any, own: bool) -> bool:
    if not isinstance(concept, Mapping):
        return False
    codings = concept.get("coding")
    return _sent_codes(map_name, value, own) <= _codes(codings) or T.domain_value(map_name, codings) == value


def concept(
    name: str, path: PathT, map_name: str, *, get: Getter | None = None, own: bool = True, derived: bool = False
) -> Field:
    """A CodeableConcept that is wholly ours: replaced when its meaning changes."""

    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        cc = get_in(obj, path)
        return T.domain_value(map_name, cc.get("coding")) if isinstance(cc, Mapping) else None

    def same(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        cc = get_in(obj, path)
        return cc is None if value is None else _holds_concept(cc, map_name, value, own)

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        set_in(obj, path, T.concept(map_name, value, own=own) if value is not None else None)

    return Field(name, get or attr(name), read, write, same, derived)


def codings_at(name: str, path: PathT, map_name: str, *, get: Getter | None = None) -> Field:
    """The ``coding`` list of a CodeableConcept whose ``text`` belongs to another field."""
    return Field(
        name,
        get or attr(name),
        lambda obj, ctx: T.domain_value(map_name, get_in(obj, path)),
        lambda obj, v, ctx: set_in(obj, path, T.codings(map_name, v) if v is not None else None),
    )


def concept_items(
    name: str,
    path: PathT,
    map_name: str,
    *,
    get: Getter | None = None,
    many: bool = False,
    own: bool = True,
    wrap: Callable[[dict[str, Any]], dict[str, Any]] = lambda cc: cc,
    unwrap: Callable[[Mapping[str, Any]], Any] = lambda item: item,
    derived: bool = False,
) -> Field:
    """Our value(s) among the CodeableConcepts of a list that may hold others' concepts too."""

    def decode(item: Mapping[str, Any], ctx: Ctx) -> str | None:
        cc = unwrap(item)
        return T.domain_value(map_name, cc.get("coding")) if isinstance(cc, Mapping) else None

    def same_one(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        held = [unwrap(i) for i in (get_in(obj, path) or ()) if isinstance(i, Mapping) and decode(i, ctx) is not None]
        if value is None:
            return not held
        return any(_holds_concept(cc, map_name, value, own) for cc in held)

    return items(
        name,
        path,
        decode=decode,
        encode=lambda v, ctx: wrap(T.concept(map_name, v, own=own)),
        get=get,
        many=many,
        same=None if many else same_one,
        derived=derived,
    )


# --- extensions ------------------------------------------------------------------------------------


def extension_items(
    name: str,
    url: str,
    value_key: str,
    *,
    decode: Callable[[Any], Any],
    encode: Callable[[Any], Any],
    get: Getter | None = None,
    many: bool = True,
    path: PathT = ("extension",),
    default: Any = None,
    derived: bool = False,
) -> Field:
    """Values carried by the extensions of one URL (others' extensions keep their place).

    ``value_key`` may be ``"extension"``: a complex extension, whose sub-extensions ``decode`` reads.
    """

    def dec(item: Mapping[str, Any], ctx: Ctx) -> Any:
        return decode(item.get(value_key)) if item.get("url") == url else None

    return items(
        name,
        path,
        decode=dec,
        encode=lambda v, ctx: {"url": url, value_key: encode(v)},
        get=get,
        many=many,
        default=default,
        derived=derived,
    )


def extension_item(name: str, url: str, value_key: str, **kwargs: Any) -> Field:
    """A single value carried by an extension."""
    return extension_items(name, url, value_key, many=False, **kwargs)


# --- references ------------------------------------------------------------------------------------


def party(
    name: str,
    path: PathT,
    kinds: Iterable[PartyKind] | None = None,
    *,
    get: Getter | None = None,
    derived: bool = False,
) -> Field:
    """A Reference to a party (patient, practitioner, organisation, related person)."""
    allowed = frozenset(kinds) if kinds is not None else None

    def read(obj: Mapping[str, Any], ctx: Ctx) -> Party | None:
        return read_party(get_in(obj, path), allowed)

    def same(obj: Mapping[str, Any], value: Party | None, ctx: Ctx) -> bool:
        # The reference we would write is usually there verbatim: no need to parse it into a Party.
        if value is not None and get_in(obj, path) == party_reference(value):
            return True
        return read(obj, ctx) == value

    return Field(
        name,
        get or attr(name),
        read,
        lambda obj, v, ctx: set_in(obj, path, party_reference(v) if v is not None else None),
        same,
        derived,
    )


def party_item(name: str, path: PathT, *, get: Getter | None = None, derived: bool = False) -> Field:
    """The party named by a list of References (e.g. ``performer``); other references stay."""
    return items(
        name,
        path,
        decode=lambda item, ctx: read_party(item),
        encode=lambda v, ctx: party_reference(v),
        get=get,
        many=False,
        ident=lambda p: (p.kind, p.id),
        derived=derived,
    )


def _resolve(ctx: Ctx, reference: Any, target_type: str) -> str | None:
    key = ctx.refs.resolve(reference)
    return key.value if key is not None and key.type == target_type else None


def refs(
    name: str,
    path: PathT,
    target_type: str,
    *,
    get: Getter | None = None,
    wrap: Callable[[dict[str, str]], dict[str, Any]] = lambda r: r,
    unwrap: Callable[[Mapping[str, Any]], Any] = lambda item: item,
    derived: bool = False,
) -> Field:
    """References to the case's own resources of one type, as their domain ids; others' stay.

    Read as a set (first mention wins): one resource named twice — ``Condition/<id>`` beside a
    leftover ``urn:uuid:`` of the same Condition, or an absolute and a relative URL — is one link,
    not two (a goal does not address the same need twice).
    """
    f = items(
        name,
        path,
        decode=lambda item, ctx: _resolve(ctx, unwrap(item), target_type),
        encode=lambda v, ctx: wrap(ctx.refs.reference(ResourceKey(target_type, v))),
        get=get,
        derived=derived,
    )
    read = f.read
    return dataclasses.replace(f, read=lambda obj, ctx: list(dict.fromkeys(read(obj, ctx))), link=True)


def ref(name: str, path: PathT, target_type: str, *, get: Getter | None = None, derived: bool = False) -> Field:
    """One Reference to one of the case's own resources."""
    return Field(
        name,
        get or attr(name),
        lambda obj, ctx: _resolve(ctx, get_in(obj, path), target_type),
        lambda obj, v, ctx: set_in(obj, path, ctx.refs.reference(ResourceKey(target_type, v)) if v else None),
        derived=derived,
    )


# --- lists of sub-objects read into domain models --------------------------------------------------


def model_items(
    name: str,
    path: PathT,
    shape: Shape,
    model: type[BaseModel],
    *,
    ident: Callable[[Any], Hashable],
    get: Getter | None = None,
    defaults: Callable[[Mapping[str, Any], Ctx], dict[str, Any]] | None = None,
) -> Field:
    """A list of domain models (team members, status changes), each item merged field by field."""

    def decode(item: Mapping[str, Any], ctx: Ctx) -> Any:
        values = shape.read(item, ctx)
        if defaults is not None:
            values = {**defaults(item, ctx), **values}
        try:
            return model.model_validate(values)
        except ValidationError:
            return None

    return items(
        name,
        path,
        decode=decode,
        encode=lambda v, ctx: shape.write({}, v, ctx),
        update=lambda item, v, ctx: shape.merge(item, v, ctx),
        ident=ident,
        get=get,
    )


# --- resources -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """How one resource type maps: its field tables per FHIR version, and the elements it is born with.

    The ``skeleton`` (fixed codes such as ``intent`` or a US Core category) is written only when a
    resource is built fresh; an update never adds or changes it, so a server copy that chose
    otherwise (e.g. a US Core 9 CarePlan without the assess-plan category) keeps its choice.
    """

    resource_type: str
    shapes: Mapping[str, Shape]
    skeleton: Callable[[Ctx], dict[str, Any]] = lambda ctx: {}

    def build(self, entity: Any, ctx: Ctx, identifier_value: str) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": self.resource_type,
            "identifier": [{"system": ctx.system, "value": identifier_value}],
        }
        resource.update(self.skeleton(ctx))
        return self.shapes[ctx.version].write(resource, entity, ctx)

    def merge(self, base: Mapping[str, Any], entity: Any, ctx: Ctx, *, copy: bool = True) -> dict[str, Any]:
        """The update of ``base`` (copied first, unless ``copy=False`` hands over a private copy).

        A base without our business identifier was created by another system: see :meth:`Shape.merge`.
        """
        foreign = not any(isinstance(i, dict) and i.get("system") == ctx.system for i in base.get("identifier") or ())
        return self.shapes[ctx.version].merge(clone(base) if copy else dict(base), entity, ctx, foreign=foreign)

    def changed(self, base: Mapping[str, Any], entity: Any, ctx: Ctx) -> list[str]:
        return self.shapes[ctx.version].changed(base, entity, ctx)

    def read(self, resource: Mapping[str, Any], ctx: Ctx) -> dict[str, Any]:
        return self.shapes[ctx.version].read(resource, ctx)

    def unreadable(self, resource: Mapping[str, Any], ctx: Ctx) -> list[str]:
        return self.shapes[ctx.version].unreadable(resource)
