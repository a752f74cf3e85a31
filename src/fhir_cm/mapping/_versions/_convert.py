"""The walker: converts a resource from one FHIR version to the other, element by element.

At every structure (the resource, each backbone element, each data type value) it

1. takes out the cross-version extensions that carry elements of the *target* version (left there
   by an earlier conversion the other way) so they can be restored;
2. applies the rules registered for that structure (renames, merges, code changes, structural
   changes; ``_rules.py``, ``_structural.py``, ``mappings/r4-r5-elements.json``);
3. copies every other element whose name and type the target version shares, recursing into it;
   coerces one whose type changed in a known way (``COERCIONS``); and carries one with no home in
   the target version in a cross-version extension;
4. puts back restored elements that no rule claimed.

Lossless both ways: when a rule's result does not convert back to the original, the original
travels in a cross-version extension as well. A carried value is restored only while it still
agrees with the data next to it (the restored value must convert back to what the resource holds
now), so a change made in the other version wins over a stale extension.
"""

from __future__ import annotations

import copy
from typing import Any

from ._errors import UnrepresentableElementError, UnsupportedResourceError
from ._extensions import DecodeError, ExtensionCodec, xver_path, xver_url
from ._rules import COERCIONS, ChoiceRule, CodeRule, ElementRule, Level, MergeRule, Rule, Values, as_list
from ._schema import Elem, FhirVersion, elements_by_name, model_class, other, referenced_type
from ._structural import STRUCTURAL_RULES
from ._table import TABLE

__all__ = ["Walker", "convert_resource"]


def _build_rules() -> dict[tuple[FhirVersion, str], list[Rule]]:
    rules: list[Rule] = [
        *(ElementRule.from_rename(r) for r in TABLE.renames),
        *(MergeRule(m) for m in TABLE.merges),
        *(CodeRule(c) for c in TABLE.codes),
        *STRUCTURAL_RULES,
    ]
    index: dict[tuple[FhirVersion, str], list[Rule]] = {}
    for rule in rules:
        for version in ("R4", "R5"):
            index.setdefault((version, rule.paths[version]), []).append(rule)
    return index


_RULES = _build_rules()
_RESOURCE_LEVEL = ("resourceType",)


class Walker:
    """Converts from ``source`` to ``target``; ``reverse`` is the walker for the other direction."""

    def __init__(self, source: FhirVersion, target: FhirVersion, reverse: Walker | None = None) -> None:
        self.source, self.target = source, target
        self.codec = ExtensionCodec(target)  # writes extensions into target-version resources
        self.reader = ExtensionCodec(source)  # reads extensions found in source-version resources
        self.reverse = reverse or Walker(target, source, self)

    # --- entry points ---------------------------------------------------------------------------
    def resource(self, resource: Any) -> dict[str, Any]:
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        s_cls = model_class(self.source, rtype) if isinstance(rtype, str) else None
        t_cls = model_class(self.target, rtype) if isinstance(rtype, str) else None
        if not isinstance(rtype, str):
            raise UnsupportedResourceError("a resource without a resourceType")
        if s_cls is None or t_cls is None:
            raise UnsupportedResourceError(f"no {rtype!r} resource in both FHIR {self.source} and {self.target}")
        return {"resourceType": rtype, **self.element(resource, Level(rtype, rtype, s_cls, t_cls))}

    def datatype(self, value: Any, type_name: str) -> Any:
        """A value of a data type both versions have (CodeableConcept, Reference, …)."""
        s_cls, t_cls = model_class(self.source, type_name), model_class(self.target, type_name)
        assert s_cls is not None and t_cls is not None
        return self.element(value, Level(type_name, type_name, s_cls, t_cls))

    # --- one structure --------------------------------------------------------------------------
    def element(self, src: dict[str, Any], level: Level) -> dict[str, Any]:
        """Convert one structure (a resource, a backbone element or a data type value)."""
        src, restores = self._take_restores(src, level)
        out: dict[str, Any] = {}
        carried: list[dict[str, Any]] = []
        done: set[str] = set(_RESOURCE_LEVEL)

        for rule in _RULES.get((self.source, level.s_path), ()):
            keys = rule.keys[self.source]
            values = _pick(src, keys)
            done.update(keys)
            done.update("_" + k for k in keys)
            if not values and not rule.always:
                continue
            out.update(self._apply(rule, level, values, restores, carried))

        for key in dict.fromkeys(k.removeprefix("_") for k in src):  # `_x` alone counts as x
            if key in done:
                continue
            value = src.get(key)
            s_el = level.s_fields.get(key)
            if s_el is None:  # not an element of the source version either: leave it alone
                out.update(_pick(src, (key,)))
                continue
            if key in ("extension", "modifierExtension"):
                out[key] = [self.datatype(ext, "Extension") for ext in value or []]
                continue
            if self._is_placeholder(s_el, value, src.get("_" + key), level, restores):
                continue
            found = self._counterpart(level, s_el)
            if found is None:
                carried += self._carry(level, _pick(src, (key,)))
                continue
            done.update(found.keys[self.source])
            out.update(self._apply(found, level, _pick(src, found.keys[self.source]), restores, carried))

        for name, exts in restores.items():
            out.update(self._restore_unclaimed(level, name, exts, out, carried))

        _fill_required(out, level)
        if carried:
            if "extension" not in level.t_fields:
                raise UnrepresentableElementError(f"{level.s_path}: elements without a home in {self.target}")
            out["extension"] = out.get("extension", []) + carried
        return _ordered(out, level.t_cls)

    def _apply(
        self,
        rule: Rule,
        level: Level,
        values: Values,
        restores: dict[str, list[dict[str, Any]]],
        carried: list[dict[str, Any]],
    ) -> Values:
        """Apply one rule; restore what an earlier conversion carried for it, or carry what it loses.

        The round trip is checked by running the rule itself backwards (not :meth:`element`), so
        the check does not check itself; nested structures are still converted, and checked, in full.
        """
        result = rule.convert(self, level, values)
        names = {level.t_fields[k].name for k in rule.keys[self.target] if k in level.t_fields}
        exts = [ext for name in names for ext in restores.pop(name, [])]
        if exts:
            restored = self._decode(level, names, exts)
            if restored is None:
                carried += exts  # not ours after all: keep it as a plain extension
            elif self._reverse_rule(rule, level, restored) == values:
                return restored
            return result  # the carried value no longer matches the data: the data wins
        if rule.lossy(level, self) and self._reverse_rule(rule, level, result) != values:
            carried += self._carry(level, values)
        return result

    def _reverse_rule(self, rule: Rule, level: Level, values: Values) -> Values:
        back = Level(level.t_path, level.s_path, level.t_cls, level.s_cls)
        return rule.convert(self.reverse, back, values)

    def _counterpart(self, level: Level, s_el: Elem) -> Rule | None:
        """The rule that takes a source element into the target version's model, if there is a home
        for it: the same element, a choice variant of the same type, or a CodeableReference."""
        t_same = level.t_fields.get(s_el.key)
        if t_same is not None and self.can_move(s_el, t_same):
            return ElementRule.between(level, self.source, s_el.key, s_el.key)
        t_named = elements_by_name(level.t_cls).get(s_el.choice and s_el.name or s_el.key, ())
        if s_el.choice and len(t_named) == 1 and not t_named[0].choice:  # value[x] → value
            t_el = t_named[0]
            if s_el.same_type(t_el):
                return ElementRule.between(level, self.source, s_el.key, t_el.key)
            if t_el.type == "CodeableReference" and (s_el.type, t_el.type) in COERCIONS:
                return ChoiceRule(level, self.source, self.source, s_el.name)
        if not s_el.choice and t_named and all(t.choice for t in t_named):  # value → value[x]
            same = next((t for t in t_named if s_el.same_type(t)), None)
            if same is not None:
                return ElementRule.between(level, self.source, s_el.key, same.key)
            if s_el.type == "CodeableReference" and not s_el.many:
                return ChoiceRule(level, self.source, self.target, s_el.name)
        return None

    def _is_placeholder(
        self, s_el: Elem, value: Any, under: Any, level: Level, restores: dict[str, list[dict[str, Any]]]
    ) -> bool:
        """Whether this is the stand-in a conversion wrote into an element the source version
        requires: it goes when the target does not require the element, or when the real value
        comes back from a cross-version extension."""
        if not s_el.required:
            return False
        if _placeholder(s_el) != ({} if value is None else {s_el.key: value}) | (
            {} if under is None else {"_" + s_el.key: under}
        ):
            return False
        t_named = elements_by_name(level.t_cls).get(s_el.name, ())
        return s_el.name in restores or not any(t.required for t in t_named)

    # --- values of one element ------------------------------------------------------------------
    def can_move(self, s_el: Elem, t_el: Elem) -> bool:
        return s_el.same_type(t_el, ignore_many=True) or (s_el.type, t_el.type) in COERCIONS

    def move(self, value: Any, under: Any, s_el: Elem, t_el: Elem, level: Level) -> tuple[Any, Any]:
        """An element's value(s) from ``s_el`` into ``t_el``: recursion, type coercion and 0..1 ⇄ 0..*."""
        if s_el.same_type(t_el, ignore_many=True):
            if s_el.kind == "primitive":
                return _recardinal(value, s_el, t_el), _recardinal(under, s_el, t_el)

            def one(item: Any) -> Any:
                return self._item(item, s_el, t_el, level)
        else:
            coercion = COERCIONS[(s_el.type, t_el.type)]

            def one(item: Any) -> Any:
                return coercion(self, item)

        items = as_list(value) if s_el.many else ([] if value is None else [value])
        unders = as_list(under) if s_el.many else ([] if under is None else [under])
        pairs = [
            (_fitting(one(item), t_el) if item is not None else None, unders[i] if i < len(unders) else None)
            for i, item in enumerate(items)
        ]
        pairs = [(v, u) for v, u in pairs if v is not None or u is not None]
        if t_el.many:
            return [v for v, _ in pairs] or None, ([u for _, u in pairs] if any(u for _, u in pairs) else None)
        return pairs[0] if pairs else (None, None)

    def _item(self, item: Any, s_el: Elem, t_el: Elem, level: Level) -> Any:
        if s_el.kind == "resource":
            return self.resource(item)
        assert s_el.cls is not None and t_el.cls is not None
        return self.element(item, Level(level.s_child(s_el), level.t_child(t_el), s_el.cls, t_el.cls))

    # --- cross-version extensions ---------------------------------------------------------------
    def _carry(self, level: Level, values: Values) -> list[dict[str, Any]]:
        """Extensions (in the target resource) carrying source elements that have no home there."""
        exts: list[dict[str, Any]] = []
        for key, value in values.items():
            if key.startswith("_") and key[1:] in values:
                continue
            base = key.lstrip("_")
            elem = level.s_fields[base]
            plain = None if key.startswith("_") else value
            url = xver_url(self.source, f"{level.s_path}.{elem.name}")
            exts += self.codec.encode(elem, plain, values.get("_" + base), url)
        return exts

    def _take_restores(
        self, src: dict[str, Any], level: Level
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """Split from ``src.extension`` the extensions that carry target elements of this level:
        (``src`` without them, those extensions by element name)."""
        exts = src.get("extension")
        if not exts:
            return src, {}
        restores: dict[str, list[dict[str, Any]]] = {}
        kept = []
        for ext in exts:
            path = xver_path(ext.get("url", ""), self.target) if isinstance(ext, dict) else None
            parent, _, name = (path or "").rpartition(".")
            if path and parent == level.t_path and name in elements_by_name(level.t_cls):
                restores.setdefault(name, []).append(ext)
            else:
                kept.append(ext)
        if not restores:
            return src, {}
        rest = {k: v for k, v in src.items() if k != "extension"}
        if kept:
            rest["extension"] = kept
        return rest, restores

    def _decode(self, level: Level, names: set[str], exts: list[dict[str, Any]]) -> Values | None:
        by_name = elements_by_name(level.t_cls)
        out: Values = {}
        try:
            for name in names:
                mine = [e for e in exts if e["url"].endswith(f".{name}")]
                out.update(self.reader.decode(by_name[name], mine))
        except DecodeError:
            return None
        return out

    def _restore_unclaimed(
        self, level: Level, name: str, exts: list[dict[str, Any]], out: dict[str, Any], carried: list[Any]
    ) -> Values:
        """Elements carried only in an extension. Kept as plain extensions when they clash or do not
        decode, so nothing is lost."""
        restored = self._decode(level, {name}, exts)
        if restored is None or any(k.lstrip("_") in out for k in restored):
            carried += exts
            return {}
        return restored


_DATA_ABSENT = {"extension": [{"url": TABLE.constants["dataAbsentReason"], "valueCode": "unknown"}]}


def _placeholder(elem: Elem) -> Values:
    """What stands in for a required element that the source version did not have: a
    data-absent-reason ``unknown`` (on ``_key`` for a primitive)."""
    if elem.kind == "primitive":
        return {"_" + elem.key: [copy.deepcopy(_DATA_ABSENT)] if elem.many else copy.deepcopy(_DATA_ABSENT)}
    return {elem.key: [copy.deepcopy(_DATA_ABSENT)] if elem.many else copy.deepcopy(_DATA_ABSENT)}


def _fill_required(out: dict[str, Any], level: Level) -> None:
    present = {k.lstrip("_") for k in out}
    for elems in elements_by_name(level.t_cls).values():
        if any(e.required for e in elems) and not any(e.key in present for e in elems):
            # For a choice: a CodeableConcept, else another complex type (a choice needs a value;
            # `_value` alone does not count), else the first.
            preferred = sorted(
                elems, key=lambda e: 0 if e.type == "CodeableConcept" else int(e.kind == "primitive") + 1
            )
            out.update(_placeholder(preferred[0]))


def _pick(src: dict[str, Any], keys: tuple[str, ...]) -> Values:
    return {k: src[k] for key in keys for k in (key, "_" + key) if k in src}


def _fitting(value: Any, t_el: Elem) -> Any:
    """``value`` without a reference to a resource type the target element does not allow (the
    round-trip check then carries the original)."""
    if t_el.type == "Reference" and not t_el.may_point_to(referenced_type(value)):
        return None
    if (
        t_el.type == "CodeableReference"
        and isinstance(value, dict)
        and "reference" in value
        and not t_el.may_point_to(referenced_type(value["reference"]))
    ):
        rest = {k: v for k, v in value.items() if k != "reference"}
        return rest if "concept" in rest else None
    return value


def _recardinal(value: Any, s_el: Elem, t_el: Elem) -> Any:
    if value is None or s_el.many == t_el.many:
        return value
    if t_el.many:
        return [value]
    return value[0] if value else None


def _ordered(out: dict[str, Any], cls: type) -> dict[str, Any]:
    """Properties in the order FHIR defines them (``_x`` after ``x``), for readable output."""
    order = {name: i for i, name in enumerate(cls.elements_sequence())}  # type: ignore[attr-defined]
    last = len(order)
    return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0].lstrip("_"), last), kv[0].startswith("_"))))


def convert_resource(resource: dict[str, Any], source: FhirVersion, target: FhirVersion) -> dict[str, Any]:
    """The same resource in FHIR ``target``: a new dict, ``resource`` is left as it is.

    Works on any resource type both versions have (contained resources and Bundle entries are
    converted too); EpisodeOfCare, CarePlan, Goal, ServiceRequest, CareTeam, Condition, Encounter,
    Task and Communication get the renames and restructurings of ``mappings/r4-r5-elements.json``
    and ``_structural.py``, every type gets what comparing the two versions' models shows.
    Nothing is dropped: an element without a home in ``target`` travels in HL7's cross-version
    extension (``http://hl7.org/fhir/4.0/StructureDefinition/extension-<Type>.<element>`` in R5,
    ``…/5.0/…`` in R4), and converting back restores it, so R4 → R5 → R4 (and R5 → R4 → R5) gives
    the original. A required element the source version lacks is filled with a data-absent-reason.

    Raises :class:`UnsupportedResourceError` for a resource type missing from either version and
    :class:`UnrepresentableElementError` for an element that cannot travel in an extension (R5
    ``Bundle.issues``); ``ValueError`` for a version other than ``"R4"``/``"R5"``.
    """
    if source not in ("R4", "R5") or target not in ("R4", "R5"):
        raise ValueError(f"FHIR versions are 'R4' or 'R5', not {source!r} → {target!r}")
    work = copy.deepcopy(resource)
    if source == target:
        return work
    assert target == other(source)
    return Walker(source, target).resource(work)
