"""Rules: each converts a group of elements of one structure from one FHIR version to the other.

A rule names the elements it owns in each version (``keys``) under the parent they sit in
(``paths``), and converts their values in either direction. The walker in ``_convert.py`` applies
it, and when the rule is lossy checks whether converting back gives the original; if not, the
original travels in a cross-version extension and is restored on the way back (see there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ._schema import Elem, FhirVersion, Model, element_map, referenced_type
from ._table import CodeChange, Merge, Rename

if TYPE_CHECKING:
    from ._convert import Walker

__all__ = [
    "COERCIONS",
    "ChoiceRule",
    "CodeRule",
    "ElementRule",
    "Level",
    "MergeRule",
    "Rule",
    "as_list",
    "props",
    "split_path",
]

Values = dict[str, Any]


def split_path(path: str) -> tuple[str, str]:
    """``"Encounter.participant.individual"`` → ``("Encounter.participant", "individual")``."""
    parent, _, key = path.rpartition(".")
    return parent, key


def as_list(value: Any) -> list[Any]:
    """A list element's items, or a single element's value as a one-item list (none when absent)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def props(key: str, value: Any, under: Any = None) -> Values:
    """JSON properties for one element: ``key`` and, when it carries something, ``_key``."""
    out: Values = {}
    if value is not None and value != []:
        out[key] = value
    if under is not None and not (isinstance(under, list) and all(u is None for u in under)):
        out["_" + key] = under
    return out


@dataclass(frozen=True)
class Level:
    """Where the walker is: the same structure seen in the source and in the target version."""

    s_path: str
    t_path: str
    s_cls: Model
    t_cls: Model

    @cached_property
    def s_fields(self) -> dict[str, Elem]:
        return element_map(self.s_cls)

    @cached_property
    def t_fields(self) -> dict[str, Elem]:
        return element_map(self.t_cls)

    def s_child(self, elem: Elem) -> str:
        """The source path of a child element's own structure (a data type is its type name)."""
        return elem.type if elem.kind == "datatype" else f"{self.s_path}.{elem.name}"

    def t_child(self, elem: Elem) -> str:
        return elem.type if elem.kind == "datatype" else f"{self.t_path}.{elem.name}"


class Rule:
    """Converts the elements it owns; subclasses implement :meth:`to_r5` and :meth:`to_r4`, or
    :meth:`convert` when one function serves both directions."""

    paths: dict[FhirVersion, str]
    keys: dict[FhirVersion, tuple[str, ...]]
    #: Run even when the source has none of the rule's elements (to fill a required element).
    always: bool = False

    def lossy(self, level: Level, walker: Walker) -> bool:
        """Whether converting back might not give the original (so the walker must check)."""
        return True

    def convert(self, walker: Walker, level: Level, values: Values) -> Values:
        if walker.target == "R5":
            return self.to_r5(walker, level, values)
        return self.to_r4(walker, level, values)

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        raise NotImplementedError

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        raise NotImplementedError


class ElementRule(Rule):
    """One element to one element: a rename, a type change with a known coercion, or both."""

    def __init__(self, r4_path: str, r5_path: str) -> None:
        (p4, k4), (p5, k5) = split_path(r4_path), split_path(r5_path)
        self.paths = {"R4": p4, "R5": p5}
        self.keys = {"R4": (k4,), "R5": (k5,)}

    @classmethod
    def from_rename(cls, rename: Rename) -> ElementRule:
        return cls(rename.r4, rename.r5)

    @classmethod
    def between(cls, level: Level, source: FhirVersion, s_key: str, t_key: str) -> ElementRule:
        """The rule for an element found by comparing the two versions' models at ``level``."""
        s_path, t_path = f"{level.s_path}.{s_key}", f"{level.t_path}.{t_key}"
        return cls(s_path, t_path) if source == "R4" else cls(t_path, s_path)

    def _elems(self, level: Level, walker: Walker) -> tuple[Elem, Elem]:
        return (
            level.s_fields[self.keys[walker.source][0]],
            level.t_fields[self.keys[walker.target][0]],
        )

    def lossy(self, level: Level, walker: Walker) -> bool:
        s_el, t_el = self._elems(level, walker)
        return not s_el.same_type(t_el) or t_el.loses_references_from(s_el)

    def convert(self, walker: Walker, level: Level, values: Values) -> Values:
        s_el, t_el = self._elems(level, walker)
        value, under = walker.move(values.get(s_el.key), values.get("_" + s_el.key), s_el, t_el, level)
        return props(t_el.key, value, under)


class ChoiceRule(Rule):
    """A choice of CodeableConcept or Reference (``item[x]``) ⇄ one CodeableReference (``item``),
    as R5 did for Medication.ingredient.item and others; found by comparing the models."""

    def __init__(self, level: Level, source: FhirVersion, choice_side: FhirVersion, name: str) -> None:
        fields = level.s_fields if choice_side == source else level.t_fields
        variants = tuple(e.key for e in fields.values() if e.name == name and e.choice)
        plain_side: FhirVersion = "R5" if choice_side == "R4" else "R4"
        path = {source: level.s_path, ("R5" if source == "R4" else "R4"): level.t_path}
        self.paths = {"R4": path["R4"], "R5": path["R5"]}
        self.keys = {choice_side: variants, plain_side: (name,)}
        self.choice_side = choice_side

    def convert(self, walker: Walker, level: Level, values: Values) -> Values:
        if walker.source == self.choice_side:
            for key in self.keys[walker.source]:
                if key in values:
                    s_el, t_el = level.s_fields[key], level.t_fields[self.keys[walker.target][0]]
                    value, _ = walker.move(values[key], None, s_el, t_el, level)
                    return props(t_el.key, value)
            return {}
        ref = values.get(self.keys[walker.source][0]) or {}
        for part, type_name in (("reference", "Reference"), ("concept", "CodeableConcept")):
            t_key = next((k for k in self.keys[walker.target] if level.t_fields[k].type == type_name), None)
            if part in ref and t_key is not None:
                return {t_key: walker.datatype(ref[part], type_name)}
        return {}


class MergeRule(Rule):
    """R4 ``xCode`` + ``xReference`` lists ⇄ one R5 CodeableReference list (see the table)."""

    def __init__(self, merge: Merge) -> None:
        parent, code_key = split_path(merge.r4[0])
        _, ref_key = split_path(merge.r4[1])
        r5_parent, r5_key = split_path(merge.r5)
        self.paths = {"R4": parent, "R5": r5_parent}
        self.keys = {"R4": (code_key, ref_key), "R5": (r5_key,)}
        self.item_element = merge.r5_item_element

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        code_key, ref_key = self.keys["R4"]
        refs = [{"concept": walker.datatype(c, "CodeableConcept")} for c in as_list(values.get(code_key))]
        target = level.t_fields[self.keys["R5"][0]]
        if self.item_element:
            assert target.cls is not None
            target = element_map(target.cls)[self.item_element]
        refs += [
            {"reference": walker.datatype(r, "Reference")}
            for r in as_list(values.get(ref_key))
            if target.may_point_to(referenced_type(r))
        ]
        if self.item_element:
            refs = [{self.item_element: [ref]} for ref in refs]
        return props(self.keys["R5"][0], refs)

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        items = as_list(values.get(self.keys["R5"][0]))
        if self.item_element:
            items = [ref for item in items for ref in as_list(item.get(self.item_element))]
        codes = [walker.datatype(i["concept"], "CodeableConcept") for i in items if "concept" in i]
        code_key, ref_key = self.keys["R4"]
        refs = [
            walker.datatype(i["reference"], "Reference")
            for i in items
            if "reference" in i and level.t_fields[ref_key].may_point_to(referenced_type(i["reference"]))
        ]
        out: Values = {}
        for key, found in ((code_key, codes), (ref_key, refs)):
            if found:
                out[key] = found if level.t_fields[key].many else found[0]
        return out


class CodeRule(Rule):
    """A code whose allowed values changed: map to the nearest code of the target version."""

    def __init__(self, change: CodeChange) -> None:
        (p4, k4), (p5, k5) = split_path(change.r4), split_path(change.r5)
        self.paths = {"R4": p4, "R5": p5}
        self.keys = {"R4": (k4,), "R5": (k5,)}
        self.maps = {"R5": change.r4_to_r5, "R4": change.r5_to_r4}  # keyed by target version

    def convert(self, walker: Walker, level: Level, values: Values) -> Values:
        s_key, t_key = self.keys[walker.source][0], self.keys[walker.target][0]
        code = values.get(s_key)
        mapped = self.maps[walker.target].get(code, code) if isinstance(code, str) else code
        return props(t_key, mapped, values.get("_" + s_key))


# --- type coercions between an element's R4 and R5 types ----------------------------------------
# Each converts one item; None means the item has no form in the target type (the walker's
# round-trip check then keeps the original in a cross-version extension).
Coercion = Callable[["Walker", Any], Any]


def _coding_to_concept(walker: Walker, coding: Any) -> Any:
    return {"coding": [walker.datatype(coding, "Coding")]}


def _concept_to_coding(walker: Walker, concept: Any) -> Any:
    codings = concept.get("coding") or []
    return walker.datatype(codings[0], "Coding") if codings else None


def _concept_to_ref(walker: Walker, concept: Any) -> Any:
    return {"concept": walker.datatype(concept, "CodeableConcept")}


def _ref_to_concept(walker: Walker, ref: Any) -> Any:
    return walker.datatype(ref["concept"], "CodeableConcept") if "concept" in ref else None


def _reference_to_ref(walker: Walker, reference: Any) -> Any:
    # A Reference that only has a display is a concept by another name; HL7's own R5 examples
    # turned R4 {"display": x} into {"concept": {"text": x}}.
    if set(reference) == {"display"}:
        return {"concept": {"text": reference["display"]}}
    return {"reference": walker.datatype(reference, "Reference")}


def _ref_to_reference(walker: Walker, ref: Any) -> Any:
    if "reference" in ref:
        return walker.datatype(ref["reference"], "Reference")
    concept = ref.get("concept")
    if isinstance(concept, dict) and set(concept) == {"text"}:
        return {"display": concept["text"]}
    return None


def _to_integer64(walker: Walker, number: Any) -> Any:
    return str(number)


def _from_integer64(walker: Walker, text: Any) -> Any:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


COERCIONS: dict[tuple[str, str], Coercion] = {
    ("Coding", "CodeableConcept"): _coding_to_concept,
    ("CodeableConcept", "Coding"): _concept_to_coding,
    ("CodeableConcept", "CodeableReference"): _concept_to_ref,
    ("CodeableReference", "CodeableConcept"): _ref_to_concept,
    ("Reference", "CodeableReference"): _reference_to_ref,
    ("CodeableReference", "Reference"): _ref_to_reference,
    **{(t, "integer64"): _to_integer64 for t in ("integer", "unsignedInt", "positiveInt")},
    **{("integer64", t): _from_integer64 for t in ("integer", "unsignedInt", "positiveInt")},
}
