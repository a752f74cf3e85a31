"""Fields that point elsewhere: parties (Patient, Practitioner, …), references within the case, nested models."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ...domain import Party, PartyKind
from .._base import ResourceKey
from .._json import PathT, absent, getter, set_in
from ._core import Ctx, Field, Getter, Shape, attr, items


def party(
    name: str,
    path: PathT,
    kinds: Iterable[PartyKind] | None = None,
    *,
    get: Getter | None = None,
    derived: bool = False,
) -> Field:
    """A Reference to a party (patient, practitioner, organisation, related person)."""
    at, gone = getter(path), absent(path)
    allowed = frozenset(kinds) if kinds is not None else None

    def read(obj: Mapping[str, Any], ctx: Ctx) -> Party | None:
        return ctx.refs.read_party(at(obj), allowed)

    def same(obj: Mapping[str, Any], value: Party | None, ctx: Ctx) -> bool:
        # The reference we would write is usually there verbatim: no need to parse it into a Party.
        if value is not None and at(obj) == ctx.refs.party(value):
            return True
        held = read(obj, ctx)
        if derived and value is not None and value.name is None and held is not None:
            # A display on a Reference written from the case (never read back) that the case knows
            # no name for says nothing against it (EHRs dress every Reference): rewriting the
            # Reference would only take that display away, on every update.
            return held.model_copy(update={"name": None}) == value
        return held == value

    return Field(
        name,
        get or attr(name),
        read,
        lambda obj, v, ctx: set_in(obj, path, ctx.refs.party(v) if v is not None else None),
        same,
        derived,
        written=lambda obj, v, ctx: at(obj) == ctx.refs.party(v) if v is not None else gone(obj),
    )


def party_item(name: str, path: PathT, *, get: Getter | None = None, derived: bool = False) -> Field:
    """The party named by a list of References (e.g. ``performer``); other references stay."""
    return items(
        name,
        path,
        decode=lambda item, ctx: ctx.refs.read_party(item),
        encode=lambda v, ctx: ctx.refs.party(v),
        get=get,
        many=False,
        ident=lambda p: (p.kind, p.id, p.server),
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
        render=lambda v, ctx: wrap(ctx.refs.shown(target_type, v)),
        get=get,
        derived=derived,
    )
    read = f.read
    return dataclasses.replace(f, read=lambda obj, ctx: list(dict.fromkeys(read(obj, ctx))), link=True)


def ref(name: str, path: PathT, target_type: str, *, get: Getter | None = None, derived: bool = False) -> Field:
    """One Reference to one of the case's own resources."""
    at, gone = getter(path), absent(path)
    return Field(
        name,
        get or attr(name),
        lambda obj, ctx: _resolve(ctx, at(obj), target_type),
        lambda obj, v, ctx: set_in(obj, path, ctx.refs.reference(ResourceKey(target_type, v)) if v else None),
        derived=derived,
        written=lambda obj, v, ctx: at(obj) == ctx.refs.shown(target_type, v) if v else gone(obj),
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

    at = getter(path)

    def written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        # Every item holds its value, field by field, in order: each would be matched to its own
        # value and merged into (changing nothing), so the list stays as it is. No model is built.
        held = at(obj)
        if type(held) is not list or not held or len(held) != len(value):
            return False
        return all(type(item) is dict and shape.holds_all(item, v, ctx) for item, v in zip(held, value))

    def items_as_written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> dict[str, str]:
        # Each model is matched to the item it was read from by its identity (a model new since, or
        # one whose identity changed, matches none: its days are the case's own).
        held = at(obj)
        if type(held) is not list or not value:
            return {}
        by_ident: dict[Hashable, Mapping[str, Any]] = {}
        for item in held:
            if isinstance(item, Mapping) and (read := decode(item, ctx)) is not None:
                by_ident.setdefault(ident(read), item)
        out: dict[str, str] = {}
        for i, v in enumerate(value):
            if (item := by_ident.get(ident(v))) is None:
                continue
            for sub in shape.fields:
                if sub.as_written is not None and (as_written := sub.as_written(item, sub.get(v, ctx))) is not None:
                    out[f"/{i}/{sub.name}"] = as_written
        return out

    f = items(
        name,
        path,
        decode=decode,
        encode=lambda v, ctx: shape.write({}, v, ctx),
        update=lambda item, v, ctx: shape.merge(dict(item), v, ctx),  # the item may be shared with a base
        ident=ident,
        get=get,
    )
    return dataclasses.replace(f, written=written, items_as_written=items_as_written)


# --- resources -------------------------------------------------------------------------------------
