"""Fields and shapes: a domain value and where it lives in FHIR JSON; a table of them (see the package)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from .._base import FhirVersion, ResourceKey
from .._json import PathT, absent, getter, identity, merge_list, read_day, set_in
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
    #: Let fields prove they hold a value by comparing the JSON they would write (see ``Field.written``);
    #: off, only the general comparison decides (tests check the two agree).
    quick: bool = True

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

    ``written(obj, value, ctx)`` is a quick proof, tried first on an update: True only when ``obj``
    already holds exactly the JSON ``write`` would put there, so writing could change nothing. It
    compares JSON instead of reading it back into domain values (resolving references, decoding
    codes, validating models), which is most of an update's work when little changed. False proves
    nothing and ``same`` (or ``read``) decides as before, so the result of an update is the same
    with or without it.
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
    written: Callable[[Mapping[str, Any], Any, Ctx], bool] | None = None
    #: A date field: the partial date ("2024", "2024-06") ``obj`` holds where it reads as the day
    #: given, else None — what the sender wrote, for a reader who must not take the day for theirs.
    as_written: Callable[[Mapping[str, Any], Any], str | None] | None = None
    #: A date field: put a date as written (``as_written``'s answer) into ``obj`` where the field writes
    #: its day, for a document that must say what the sender wrote, not the day it reads as.
    put_written: Callable[[dict[str, Any], str], None] | None = None
    #: A list of nested models (team members, status changes): the partial dates its items hold where
    #: they read as the days of ``value``'s models, by pointer below the list (``/0/start``) → as written.
    items_as_written: Callable[[Mapping[str, Any], Any, Ctx], dict[str, str]] | None = None

    def holds(self, obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        if self.written is not None and ctx.quick and self.written(obj, value, ctx):
            return True
        return self.reads_as(obj, value, ctx)

    def reads_as(self, obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        """The general comparison: what ``obj`` says, read as the domain reads it, is ``value``."""
        if self.same is not None:
            return self.same(obj, value, ctx)
        held = self.read(obj, ctx)
        return bool((self.default if held is None else held) == value)


#: One field as a shape walks it: the field, the entity attribute it takes as it is (None: ask
#: ``get``), and its quick proof.
_Step = tuple[Field, str | None, Callable[[Mapping[str, Any], Any, Ctx], bool] | None]


@dataclass(frozen=True, slots=True)
class Shape:
    """A table of fields over one JSON object.

    The walks are laid out once per table (``_steps``; ``_foreign_steps`` without what a foreign
    object keeps), so writing and merging do no per-call set-up: most fields take an entity
    attribute as it is, which is read directly instead of through a getter.
    """

    fields: tuple[Field, ...]
    _steps: tuple[_Step, ...] = field(init=False, repr=False, compare=False)
    _foreign_steps: tuple[_Step, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        steps = tuple((f, _ATTRIBUTES.get(f.get), f.written) for f in self.fields)
        object.__setattr__(self, "_steps", steps)
        object.__setattr__(self, "_foreign_steps", tuple(s for s in steps if s[0].link or not s[0].derived))

    def write(self, obj: dict[str, Any], entity: Any, ctx: Ctx) -> dict[str, Any]:
        for f, name, _ in self._steps:
            f.write(obj, f.get(entity, ctx) if name is None else getattr(entity, name), ctx)
        return obj

    def merge(self, obj: dict[str, Any], entity: Any, ctx: Ctx, *, foreign: bool = False) -> dict[str, Any]:
        """Write into ``obj`` only the fields whose domain value it does not already hold.

        On a ``foreign`` object (a resource another system created) fields derived from the case
        (status, subject, requester, narrative…) are left as that system wrote them; only what the
        domain reads from it, and the links between the case's resources, are kept in step.
        """
        quick = ctx.quick
        for f, name, written in self._foreign_steps if foreign else self._steps:
            value = f.get(entity, ctx) if name is None else getattr(entity, name)
            if quick and written is not None and written(obj, value, ctx):
                continue  # Field.holds, inlined: this loop is most of an update
            if not f.reads_as(obj, value, ctx):
                f.write(obj, value, ctx)
        return obj

    def holds_all(self, obj: Mapping[str, Any], entity: Any, ctx: Ctx) -> bool:
        """Whether ``obj`` holds every field as ``entity`` has them (merging it would change nothing)."""
        quick = ctx.quick
        for f, name, written in self._steps:
            value = f.get(entity, ctx) if name is None else getattr(entity, name)
            if not (quick and written is not None and written(obj, value, ctx)) and not f.reads_as(obj, value, ctx):
                return False
        return True

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


#: The getters :func:`attr` made, with the attribute each takes (shapes read it directly).
_ATTRIBUTES: dict[Getter, str] = {}


@functools.cache
def attr(name: str) -> Getter:
    """The getter of an entity attribute, as it is."""

    def get(entity: Any, ctx: Ctx) -> Any:
        return getattr(entity, name)

    _ATTRIBUTES[get] = name
    return get


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
    render: Callable[[Any, Ctx], Any] | None = None,
) -> Field:
    """A value held by some items of the list at ``path`` (one item, or ``many``).

    ``render`` is ``encode`` for comparing only (it may return a shared, cached object); by default
    ``encode`` itself.
    """
    at, gone = getter(path), absent(path)
    show = render or encode

    def read(obj: Mapping[str, Any], ctx: Ctx) -> Any:
        values = [v for i in (at(obj) or ()) if isinstance(i, dict) and (v := decode(i, ctx)) is not None]
        return values if many else (values[0] if values else None)

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        new = list(value or ()) if many else ([] if value is None else [value])
        old = at(obj)
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

    def written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        # Our items, in order, are exactly the ones we would encode, and every other item is
        # someone else's (decodes to nothing): ``merge_list`` would give back the same list.
        held = at(obj)
        if type(held) is not list or not held:
            return held is None and not value and gone(obj)  # nothing to write, nowhere
        want = [show(v, ctx) for v in value or ()] if many else ([] if value is None else [show(value, ctx)])
        n, i = len(want), 0
        for item in held:
            if i < n and item == want[i]:
                i += 1
            elif type(item) is dict and decode(item, ctx) is not None:
                return False
        return i == n

    return Field(name, get or attr(name), read, write, same, derived, default, written=written)


# --- primitives ------------------------------------------------------------------------------------


def text(name: str, path: PathT, *, get: Getter | None = None, derived: bool = False) -> Field:
    """A string."""
    at, gone = getter(path), absent(path)

    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        value = at(obj)
        return value if isinstance(value, str) and value else None

    return Field(
        name,
        get or attr(name),
        read,
        lambda obj, v, ctx: set_in(obj, path, v),
        derived=derived,
        written=lambda obj, v, ctx: at(obj) == v if v is not None else gone(obj),
    )


def date(
    name: str,
    path: PathT,
    *,
    get: Getter | None = None,
    derived: bool = False,
    last: bool = False,
    replaces: tuple[str, ...] = (),
) -> Field:
    """A day, written as a FHIR date (which every date and dateTime element accepts).

    A partial date held there ("2024", "2024-05") reads as its first day, or with ``last`` (the
    element ends something) its last (see :func:`read_day`); it is not rewritten while that day is
    the domain's, so the resource keeps the precision its sender gave it.

    ``replaces`` names the other forms of a choice element (``dueDuration`` beside ``dueDate``): a
    day written takes the place of the one another system gave, since a resource holding two forms
    of one element is invalid and every server refuses it.
    """
    at, gone = getter(path), absent(path)
    others = [(*path[:-1], key) for other in replaces for key in (other, "_" + other)]

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        set_in(obj, path, value.isoformat() if value is not None else None)
        if value is not None:
            for other in others:
                set_in(obj, other, None)

    def as_written(obj: Mapping[str, Any], value: Any) -> str | None:
        held = at(obj)
        partial = isinstance(held, str) and len(held) < 10 and value is not None
        return held if partial and read_day(held, last=last) == value else None

    return Field(
        name,
        get or attr(name),
        lambda obj, ctx: read_day(at(obj), last=last),
        write,
        derived=derived,
        written=lambda obj, v, ctx: at(obj) == v.isoformat() if v is not None else gone(obj),
        as_written=as_written,
        put_written=lambda obj, text: set_in(obj, path, text),
    )


# --- codes -----------------------------------------------------------------------------------------


def _ours(resource: Mapping[str, Any], system: str) -> bool:
    """Whether ``resource`` carries a business identifier in our system (else another system made it)."""
    for i in resource.get("identifier") or ():
        if isinstance(i, dict) and i.get("system") == system:
            return True
    return False


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

    def merge(self, base: Mapping[str, Any], entity: Any, ctx: Ctx) -> dict[str, Any]:
        """The update of ``base``: a new resource that shares with ``base`` what it does not change.

        ``base`` is never changed: the update starts from a shallow copy, and every write replaces
        the containers on its way instead of changing them (see :func:`set_in`). Copying the whole
        base first was half the cost of updating a case that changed little.

        A base without our business identifier was created by another system: see :meth:`Shape.merge`.
        """
        foreign = not _ours(base, ctx.system)
        return self.shapes[ctx.version].merge(dict(base), entity, ctx, foreign=foreign)

    def changed(self, base: Mapping[str, Any], entity: Any, ctx: Ctx) -> list[str]:
        return self.shapes[ctx.version].changed(base, entity, ctx)

    def read(self, resource: Mapping[str, Any], ctx: Ctx) -> dict[str, Any]:
        return self.shapes[ctx.version].read(resource, ctx)

    def unreadable(self, resource: Mapping[str, Any], ctx: Ctx) -> list[str]:
        return self.shapes[ctx.version].unreadable(resource)
