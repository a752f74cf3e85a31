"""What elements a FHIR structure has in R4 and in R5, read from the fhir.resources models.

The converter decides what to copy, coerce or carry in an extension by comparing the two versions'
element lists. Reading them from the models that also validate the output keeps the converter and
the validator in agreement, and covers every resource and data type (contained resources too)
without hand-written tables. R4 is read from ``fhir.resources.R4B``, whose element lists match
4.0.1 for every type fhir-cm exchanges (checked against the 4.0.1 StructureDefinitions).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import fhir.resources as r5_models
import fhir.resources.R4B as r4_models
from pydantic import BaseModel
from .._base import FhirVersion  # the one definition

__all__ = [
    "Elem",
    "FhirVersion",
    "Kind",
    "Model",
    "element_map",
    "elements_by_name",
    "model_class",
    "other",
    "referenced_type",
]

Model = type[BaseModel]  # a fhir.resources model class
Kind = Literal["primitive", "datatype", "backbone", "resource"]

# Primitive types whose JSON form is a string; a value moves between any two of them unchanged.
_STRING_PRIMITIVES = frozenset(
    {
        "string",
        "markdown",
        "code",
        "id",
        "uri",
        "url",
        "canonical",
        "oid",
        "uuid",
        "base64Binary",
        "date",
        "dateTime",
        "instant",
        "time",
        "xhtml",
    }
)
_NUMBER_PRIMITIVES = frozenset({"integer", "positiveInt", "unsignedInt", "decimal"})


@dataclass(frozen=True, slots=True)
class Elem:
    """One element of a structure, as JSON sees it."""

    key: str  # the JSON property, e.g. "scheduledTiming"
    name: str  # the element name, e.g. "scheduled" for a choice, else the key
    type: str  # FHIR type: "code", "CodeableConcept", "Resource", or the backbone class name
    kind: Kind
    many: bool
    cls: Model | None  # model class of a data type or backbone element
    required: bool = False  # min cardinality 1 (for a choice: one of its types must be present)
    targets: frozenset[str] | None = None  # resource types a Reference/CodeableReference may point to
    summary: bool = False  # isSummary: part of what ``_summary=true`` returns

    def may_point_to(self, resource_type: str | None) -> bool:
        """Whether a reference to ``resource_type`` (None: cannot tell) is allowed here."""
        return resource_type is None or not self.targets or "Resource" in self.targets or resource_type in self.targets

    def loses_references_from(self, source: Elem) -> bool:
        """Whether some reference ``source`` allows is not allowed here (so moving may drop it)."""
        if not self.targets or "Resource" in self.targets:
            return False
        return not source.targets or not source.targets <= self.targets

    @property
    def choice(self) -> bool:
        return self.name != self.key

    @property
    def ext_type(self) -> str:
        """The type as spelt in ``value[x]`` suffixes: ``Code``, ``CodeableConcept``."""
        return self.type[0].upper() + self.type[1:]

    def same_type(self, other: Elem, ignore_many: bool = False) -> bool:
        """Whether a value of this element can be copied as-is (after recursion) into ``other``."""
        if (self.many != other.many and not ignore_many) or self.kind != other.kind:
            return False
        if self.kind == "primitive":
            return self.type == other.type or _json_family(self.type) == _json_family(other.type)
        if self.kind == "datatype":
            return self.type == other.type
        return True


def _json_family(fhir_type: str) -> str:
    if fhir_type in _STRING_PRIMITIVES:
        return "string"
    if fhir_type in _NUMBER_PRIMITIVES:
        return "number"
    return fhir_type


_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[^/]+(?:/_history/[^/]+)?$")


def referenced_type(reference: Any) -> str | None:
    """The resource type a Reference points to (``Patient/1``, an absolute URL, or ``type``), or
    None when it cannot be told (a contained ``#id``, a ``urn:uuid:``, a bare identifier)."""
    if not isinstance(reference, dict):
        return None
    match = _REFERENCE.search(reference.get("reference") or "")
    if match:
        return match.group(1)
    declared = reference.get("type")
    return declared if isinstance(declared, str) and declared.isalpha() else None


def other(version: FhirVersion) -> FhirVersion:
    """The version that is not ``version``."""
    return "R5" if version == "R4" else "R4"


def model_class(version: FhirVersion, type_name: str) -> Model | None:
    """The model class of a resource or data type, or None when the version has no such type."""
    getter = r4_models.get_fhir_model_class if version == "R4" else r5_models.get_fhir_model_class
    try:
        return getter(type_name)
    except (ValueError, ImportError, AttributeError):
        return None


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip Optional/Union and List from a field annotation: (inner type, is a list)."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin is list:
            many = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _describe(annotation: Any) -> tuple[str, Kind, Model | None]:
    inner, _ = _unwrap(annotation)
    metadata = getattr(inner, "__metadata__", None)
    if metadata:  # Annotated[str, Code()] and friends
        name = type(metadata[0]).__name__
        return name[0].lower() + name[1:], "primitive", None
    if inner is bool:  # fhir.resources spells the boolean primitive as plain bool
        return "boolean", "primitive", None
    klass_path = getattr(inner, "_model_klass", None)
    if klass_path is None:
        raise TypeError(f"unexpected field annotation {annotation!r}")
    cls = inner.get_model_klass()
    if cls.__name__ == "Resource" or klass_path.endswith(".Resource"):
        return "Resource", "resource", None
    module = cls.__module__.rsplit(".", 1)[-1]
    kind: Kind = "datatype" if module == cls.__name__.lower() else "backbone"
    return cls.__name__, kind, cls


@cache
def element_map(cls: Model) -> dict[str, Elem]:
    """Every element of a model class, keyed by JSON property (``_x`` siblings not included)."""
    out: dict[str, Elem] = {}
    for field in cls.model_fields.values():
        extra = field.json_schema_extra or {}
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        key = field.alias or ""
        type_name, kind, klass = _describe(field.annotation)
        _, many = _unwrap(field.annotation)
        group = extra.get("one_of_many")
        required = bool(field.is_required() or extra.get("element_required") or extra.get("one_of_many_required"))
        targets = extra.get("enum_reference_types")
        out[key] = Elem(
            key,
            str(group) if group else key,
            type_name,
            kind,
            many,
            klass,
            required,
            frozenset(str(t) for t in targets) if isinstance(targets, list) and targets else None,
            bool(extra.get("summary_element_property")),
        )
    return out


@cache
def elements_by_name(cls: Model) -> dict[str, tuple[Elem, ...]]:
    """Elements grouped by element name: a choice element lists one Elem per allowed type."""
    grouped: dict[str, list[Elem]] = {}
    for elem in element_map(cls).values():
        grouped.setdefault(elem.name, []).append(elem)
    return {name: tuple(elems) for name, elems in grouped.items()}
