"""Fields whose values are codes: a coding, a CodeableConcept, lists of them, extensions (codes from ``mappings/``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ... import terminology as T
from .._json import PathT, absent, getter, set_in
from ._core import Ctx, Field, Getter, attr, items


def code(name: str, path: PathT, map_name: str, *, get: Getter | None = None, derived: bool = False) -> Field:
    """A ``code`` element (a status) whose value comes from a ConceptMap."""
    at, gone = getter(path), absent(path)

    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        return T.domain_value_of_code(map_name, at(obj))

    def same(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        if value is None:
            return at(obj) is None
        return bool(at(obj) == T.code(map_name, value) or read(obj, ctx) == value)

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        set_in(obj, path, T.code(map_name, value) if value is not None else None)

    def unreadable(obj: Mapping[str, Any]) -> str | None:
        held = at(obj)
        if held is None or T.domain_value_of_code(map_name, held) is not None:
            return None
        return f"{'.'.join(map(str, path))} {held!r} has no counterpart in the domain"

    def written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        return at(obj) == _shown_code(map_name, value) if value is not None else gone(obj)

    return Field(name, get or attr(name), read, write, same, derived, unreadable=unreadable, written=written)


@functools.lru_cache(maxsize=4096)
def _shown_code(map_name: str, value: str) -> str:
    return T.code(map_name, value)


def _codes(codings: Iterable[Any] | None) -> set[tuple[Any, Any]]:
    return {(c.get("system"), c.get("code")) for c in codings or () if isinstance(c, Mapping)}


@functools.lru_cache(maxsize=4096)
def _shown_concept(map_name: str, value: str, own: bool) -> dict[str, Any]:
    """``T.concept`` for comparing only: one shared object per value, never put into a resource."""
    return T.concept(map_name, value, own=own)


@functools.lru_cache(maxsize=4096)
def _shown_codings(map_name: str, value: str) -> list[dict[str, str]]:
    """``T.codings`` for comparing only (shared, never put into a resource)."""
    return T.codings(map_name, value)


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
    at, gone = getter(path), absent(path)

    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        cc = at(obj)
        return T.domain_value(map_name, cc.get("coding")) if isinstance(cc, Mapping) else None

    def same(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        cc = at(obj)
        return cc is None if value is None else _holds_concept(cc, map_name, value, own)

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        set_in(obj, path, T.concept(map_name, value, own=own) if value is not None else None)

    def written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        return at(obj) == _shown_concept(map_name, value, own) if value is not None else gone(obj)

    return Field(name, get or attr(name), read, write, same, derived, written=written)


def codings_at(name: str, path: PathT, map_name: str, *, get: Getter | None = None) -> Field:
    """The ``coding`` list of a CodeableConcept whose ``text`` belongs to another field."""
    at, gone = getter(path), absent(path)
    return Field(
        name,
        get or attr(name),
        lambda obj, ctx: T.domain_value(map_name, at(obj)),
        lambda obj, v, ctx: set_in(obj, path, T.codings(map_name, v) if v is not None else None),
        written=lambda obj, v, ctx: at(obj) == _shown_codings(map_name, v) if v is not None else gone(obj),
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
    at = getter(path)

    def decode(item: Mapping[str, Any], ctx: Ctx) -> str | None:
        cc = unwrap(item)
        return T.domain_value(map_name, cc.get("coding")) if isinstance(cc, Mapping) else None

    def same_one(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        held = [unwrap(i) for i in (at(obj) or ()) if isinstance(i, Mapping) and decode(i, ctx) is not None]
        if value is None:
            return not held
        return any(_holds_concept(cc, map_name, value, own) for cc in held)

    return items(
        name,
        path,
        decode=decode,
        encode=lambda v, ctx: wrap(T.concept(map_name, v, own=own)),
        render=lambda v, ctx: wrap(_shown_concept(map_name, v, own)),
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
    decode: Callable[..., Any],
    encode: Callable[..., Any],
    get: Getter | None = None,
    many: bool = True,
    path: PathT = ("extension",),
    default: Any = None,
    derived: bool = False,
    contextual: bool = False,
) -> Field:
    """Values carried by the extensions of one URL (others' extensions keep their place).

    ``value_key`` may be ``"extension"``: a complex extension, whose sub-extensions ``decode`` reads.
    ``contextual``: ``decode`` and ``encode`` take the context too (a Reference is read at the bases
    the resource came from, and written as the server spells it).
    """

    def dec(item: Mapping[str, Any], ctx: Ctx) -> Any:
        if item.get("url") != url:
            return None
        return decode(item.get(value_key), ctx) if contextual else decode(item.get(value_key))

    def enc(v: Any, ctx: Ctx) -> dict[str, Any]:
        return {"url": url, value_key: encode(v, ctx) if contextual else encode(v)}

    return items(
        name,
        path,
        decode=dec,
        encode=enc,
        get=get,
        many=many,
        default=default,
        derived=derived,
    )


def extension_item(name: str, url: str, value_key: str, **kwargs: Any) -> Field:
    """A single value carried by an extension."""
    return extension_items(name, url, value_key, many=False, **kwargs)


# --- references ------------------------------------------------------------------------------------
