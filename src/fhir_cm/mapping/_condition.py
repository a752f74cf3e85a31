"""Need ⇄ Condition: an assessment finding as a US Core health concern.

Category: ``health-concern`` plus the assessment domain (our coding, and US Core's ``sdoh`` /
``functional-status`` where one fits). The finding is ``code.text``; ``clinicalStatus`` is active
until the need is resolved (``abatementDateTime``). Strengths ride on an extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._codes import CONDITION_CLINICAL, EXT_STRENGTH, HEALTH_CONCERN
from ._fields import Ctx, Field, ResourceSpec, Shape, concept_items, date, extension_items, party, text
from ._json import clone, get_in, read_day, set_in

__all__ = ["CONDITION", "first_display"]

_ENDED = {"inactive", "remission", "resolved"}
#: The forms of ``abatement[x]`` other than the day the mapping writes, and their primitives' extensions.
_OTHER_ABATEMENTS = tuple(
    key for form in ("Age", "Period", "Range", "String") for key in (f"abatement{form}", f"_abatement{form}")
)


def first_display(concept: Any) -> str | None:
    """A concept's words: its text, else the display of its first coding that has one."""
    if not isinstance(concept, Mapping):
        return None
    text = concept.get("text")
    if isinstance(text, str) and text:
        return text
    for c in concept.get("coding") or ():
        display = c.get("display") if isinstance(c, Mapping) else None
        if isinstance(display, str) and display:
            return display
    return None


def _clinical_code(obj: Mapping[str, Any]) -> Any:
    return get_in(obj, ("clinicalStatus", "coding", 0, "code"))


def _resolved() -> Field:
    """The day the need was resolved; writes ``clinicalStatus`` only when it contradicts the change."""

    def write(obj: dict[str, Any], value: Any, ctx: Ctx) -> None:
        set_in(obj, ("abatementDateTime",), value.isoformat() if value is not None else None)
        if value is not None:  # the day takes the place of another form (abatement[x] holds one)
            for other in _OTHER_ABATEMENTS:
                set_in(obj, (other,), None)
        ended = _clinical_code(obj) in _ENDED
        if value is not None and not ended:
            obj["clinicalStatus"] = clone(CONDITION_CLINICAL["resolved"])
        elif value is None and (ended or "clinicalStatus" not in obj):
            obj["clinicalStatus"] = clone(CONDITION_CLINICAL["active"])

    def written(obj: Mapping[str, Any], value: Any, ctx: Ctx) -> bool:
        ended = _clinical_code(obj) in _ENDED
        if value is None:
            return "abatementDateTime" not in obj and "clinicalStatus" in obj and not ended
        return bool(obj.get("abatementDateTime") == value.isoformat() and ended)

    return Field(
        "resolved",
        lambda n, ctx: n.resolved,
        lambda obj, ctx: read_day(obj.get("abatementDateTime"), last=True),
        write,
        written=written,
    )


def _finding() -> Field:
    f = text("finding", ("code", "text"))
    return Field(f.name, f.get, lambda obj, ctx: first_display(obj.get("code")), f.write, written=f.written)


_SHAPE = Shape(
    (
        concept_items("domain", ("category",), "assessment-domain-condition-category"),
        _resolved(),
        _finding(),
        party("patient", ("subject",), get=lambda n, ctx: ctx.owner.patient, derived=True),
        date("recorded", ("recordedDate",)),
        extension_items(
            "strengths",
            EXT_STRENGTH,
            "valueString",
            decode=lambda v: v if isinstance(v, str) and v else None,
            encode=str,
        ),
    )
)

CONDITION = ResourceSpec(
    "Condition", {"R4": _SHAPE, "R5": _SHAPE}, skeleton=lambda ctx: {"category": [clone(HEALTH_CONCERN)]}
)
