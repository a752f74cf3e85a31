"""Goal ⇄ Goal (US Core: lifecycleStatus, description, subject, startDate and/or target.dueDate).

The target measure is ``target.measure.text`` with no ``detail`` (invariant gol-1 wants a measure
whenever there is a detail). A self-care goal is one the patient set: ``expressedBy`` (R4) /
``source`` (R5) names the patient.

The due day is that of the first target that has one (a hospital's goal may measure one thing in its
first target and say when in another); read from the first target only, such a goal had no due day,
and with no start day it was no goal at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain import PartyKind
from ._base import FhirVersion
from ._condition import first_display
from ._fields import Ctx, Field, ResourceSpec, Shape, code, concept, date, party, refs, text
from ._json import absent, get_in, set_in

__all__ = ["GOAL"]


def _self_care(path: tuple[str, ...]) -> Field:
    gone = absent(path)

    def read(obj: Mapping[str, Any], ctx: Ctx) -> bool:
        who = ctx.refs.read_party(get_in(obj, path))
        return who is not None and who.kind is PartyKind.PATIENT

    def write(obj: dict[str, Any], value: bool, ctx: Ctx) -> None:
        set_in(obj, path, ctx.refs.party(ctx.owner.patient) if value else None)

    def written(obj: Mapping[str, Any], value: bool, ctx: Ctx) -> bool:
        return get_in(obj, path) == ctx.refs.party(ctx.owner.patient) if value else gone(obj)

    return Field("self_care", lambda g, ctx: g.self_care, read, write, written=written)


def _due() -> Field:
    """``target.dueDate`` of the first target that says when (``dueDate`` or ``dueDuration``), else
    of the first; written there, so that a changed day replaces the one read."""
    at = {i: date("due", ("target", i, "dueDate"), last=True, replaces=("dueDuration",)) for i in range(_TARGETS)}

    def field(obj: Mapping[str, Any]) -> Field:
        targets = obj.get("target")
        if isinstance(targets, list):
            for i, target in enumerate(targets[:_TARGETS]):
                if isinstance(target, Mapping) and ("dueDate" in target or "dueDuration" in target):
                    return at[i]
        return at[0]

    def written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        proof = field(obj).written
        return proof is not None and proof(obj, value, ctx)

    return Field(
        "due",
        at[0].get,
        lambda obj, ctx: field(obj).read(obj, ctx),
        lambda obj, value, ctx: field(obj).write(obj, value, ctx),
        written=written,
        as_written=lambda obj, value: _as_written(field(obj), obj, value),
        put_written=lambda obj, text: _put_written(field(obj), obj, text),
    )


def _as_written(f: Field, obj: Mapping[str, Any], value: Any) -> str | None:
    return f.as_written(obj, value) if f.as_written is not None else None


def _put_written(f: Field, obj: dict[str, Any], text: str) -> None:
    if f.put_written is not None:
        f.put_written(obj, text)


#: How many targets are looked through for the due day (a goal has a few at most).
_TARGETS = 8


def _description() -> Field:
    f = text("description", ("description", "text"))
    return Field(f.name, f.get, lambda obj, ctx: first_display(obj.get("description")), f.write, written=f.written)


def _shape(version: FhirVersion) -> Shape:
    return Shape(
        (
            code("status", ("lifecycleStatus",), "goal-status-lifecycle"),
            concept("achievement", ("achievementStatus",), "goal-achievement-status"),
            _description(),
            party("patient", ("subject",), get=lambda g, ctx: ctx.owner.patient, derived=True),
            date("start", ("startDate",), replaces=("startCodeableConcept",)),
            _due(),
            text("target", ("target", 0, "measure", "text")),
            _self_care(("source",) if version == "R5" else ("expressedBy",)),
            refs("addresses", ("addresses",), "Condition"),
        )
    )


GOAL = ResourceSpec("Goal", {"R4": _shape("R4"), "R5": _shape("R5")})
