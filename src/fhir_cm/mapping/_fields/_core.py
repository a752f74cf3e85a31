"""Fields and shapes: a domain value and where it lives in FHIR JSON; a table of them (see the package)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from .._base import FhirVersion, ResourceKey
from .._json import PathT, clone, get_in, identity, merge_list, read_date, set_in
from .._refs import References

if TYPE_CHECKING:
    from ...domain import Case


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
