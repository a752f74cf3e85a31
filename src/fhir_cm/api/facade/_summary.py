"""``_summary`` and ``_elements``: a resource cut down to what the client asked for, tagged SUBSETTED.

Which elements are summary elements (``isSummary``) and which are mandatory (min 1) is read from the
fhir.resources models of the version served (R4 from the R4B models, whose flags match 4.0.1 for the
types the facade serves), never from a list kept here, so R4 and R5 each answer by their own
definitions. ``_summary=true`` keeps the summary elements at every level, inside backbone elements
and data types too (a CarePlan's ``activity`` goes, a Reference keeps ``reference`` and ``display``
but not its extensions; ``Attachment.data`` goes) — what HAPI's encoder does. An element's ``id``
is kept wherever its element is, as HAPI does; an extension kept (R5 marks ``modifierExtension`` a
summary element) is kept whole, for an extension without its ``url`` is none.

``_summary=text`` keeps ``text``, ``id``, ``meta`` and the top-level mandatory elements;
``_summary=data`` everything but ``text``; ``_elements`` the top-level elements named (a choice
element by its name: ``occurrence`` is ``occurrenceDateTime`` or any other of its types) and the
mandatory ones, so that a subset is still a valid resource. Every one of these is tagged SUBSETTED
(``meta.tag``), as FHIR requires of a resource not whole, so no client takes it for all there is.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

import orjson

from fhir_cm.mapping import Elem, FhirVersion, element_map, model_class

from ... import decimals

__all__ = ["SUMMARY_MODES", "Summary", "mandatory_elements", "shape_resource"]

#: The ``_summary`` values that cut a resource down (``count`` and ``false`` do not).
Summary = Literal["true", "text", "data"]
SUMMARY_MODES: tuple[Summary, ...] = ("true", "text", "data")

_ALWAYS = ("resourceType", "id", "meta")
_SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


@cache
def _elements_of(version: FhirVersion, type_name: str) -> dict[str, Elem]:
    cls = model_class(version, type_name)
    return element_map(cls) if cls is not None else {}


@cache
def mandatory_elements(version: FhirVersion, resource_type: str) -> frozenset[str]:
    """The top-level elements (JSON keys) a resource of this type must have in ``version`` (min 1)."""
    return frozenset(key for key, elem in _elements_of(version, resource_type).items() if elem.required)


def _element_name(key: str) -> str:
    """The element a JSON key holds: ``status`` for ``status`` and ``_status`` (the primitive's id and extensions)."""
    return key[1:] if key.startswith("_") else key


def _summary_of(value: Any, elem: Elem, version: FhirVersion) -> Any:
    """The summary form of one element's value (a list of them too)."""
    if isinstance(value, list):
        return [_summary_of(v, elem, version) for v in value]
    if not isinstance(value, dict) or elem.cls is None or elem.type == "Extension":
        return value
    return _summary_items(value, element_map(elem.cls), version, nested=True)


def _summary_items(data: dict[str, Any], elements: dict[str, Elem], version: FhirVersion, *, nested: bool) -> Any:
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if key == "id" and nested:
            kept[key] = value
            continue
        elem = elements.get(_element_name(key))
        if elem is not None and (elem.summary or (elem.required and not nested)):
            kept[key] = _summary_of(value, elem, version)
    return kept


def _cut(resource: dict[str, Any], version: FhirVersion, summary: Summary | None, elements: Sequence[str]) -> Any:
    rtype = str(resource.get("resourceType"))
    if summary == "data":
        return {k: v for k, v in resource.items() if k != "text"}
    if summary == "true":
        kept = _summary_items(resource, _elements_of(version, rtype), version, nested=False)
        return {"resourceType": rtype, **kept}
    asked = {"text"} if summary == "text" else set(elements)
    keep = asked | mandatory_elements(version, rtype)
    named = _elements_of(version, rtype)

    def wanted(key: str) -> bool:
        # A choice element is asked for by its name (``occurrence``) and served by its type's (``occurrenceDateTime``).
        elem = named.get(_element_name(key))
        return key in _ALWAYS or _element_name(key) in keep or (elem is not None and elem.name in keep)

    return {k: v for k, v in resource.items() if wanted(k)}


def shape_resource(
    body: bytes, version: FhirVersion, *, summary: Summary | None = None, elements: Sequence[str] | None = None
) -> Any:
    """The resource (its JSON ``body``) as asked: whole — ``body`` itself, not decoded — without either,
    else the ``_summary`` form or the ``_elements`` subset, tagged SUBSETTED."""
    if summary is None and elements is None:
        return orjson.Fragment(body)
    kept = _cut(decimals.loads(body), version, summary, elements or ())
    meta = dict(kept.get("meta") or {})
    tags = list(meta.get("tag", []))
    if not any(t.get("system") == _SUBSETTED["system"] and t.get("code") == "SUBSETTED" for t in tags):
        tags.append(_SUBSETTED)
    meta["tag"] = tags
    kept["meta"] = meta
    return kept
