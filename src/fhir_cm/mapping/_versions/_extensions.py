"""Cross-version extensions: how an element with no home in the other FHIR version travels there.

HL7 names one extension per element of each version: an R4 element carried in an R5 resource is
``http://hl7.org/fhir/4.0/StructureDefinition/extension-<Type>.<path>``, an R5 element carried in
an R4 resource ``http://hl7.org/fhir/5.0/StructureDefinition/extension-<Type>.<path>``. The
extension sits on the element that would have held the missing one (the resource, or the backbone
element) and repeats once per value. A value whose type the host version's ``Extension.value[x]``
allows goes in ``value[x]``; a backbone element (or a data type the host lacks) becomes a complex
extension with one sub-extension per child element, named by the child's element name. Using the
published URLs means other tools that understand cross-version extensions read ours, and we read
theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from ._errors import UnrepresentableElementError
from ._schema import Elem, FhirVersion, element_map, elements_by_name, model_class
from ._table import TABLE
from ...errors import FhirCmError

__all__ = ["DecodeError", "ExtensionCodec", "xver_path", "xver_url"]

_PREFIX: dict[FhirVersion, str] = {
    "R4": "http://hl7.org/fhir/4.0/StructureDefinition/extension-",
    "R5": "http://hl7.org/fhir/5.0/StructureDefinition/extension-",
}


class DecodeError(FhirCmError, ValueError):
    """A cross-version extension does not have the shape its element needs; it is kept as it is."""


def xver_url(element_version: FhirVersion, path: str) -> str:
    """The URL of the extension that carries ``path`` (an element of ``element_version``)."""
    return _PREFIX[element_version] + path


def xver_path(url: str, element_version: FhirVersion) -> str | None:
    """The element path a cross-version extension URL names, if it is one for ``element_version``."""
    prefix = _PREFIX[element_version]
    return url[len(prefix) :] if url.startswith(prefix) else None


@cache
def _allowed_value_types(host: FhirVersion) -> frozenset[str]:
    ext_cls = model_class(host, "Extension")
    assert ext_cls is not None
    types = {elem.ext_type for elem in elements_by_name(ext_cls)["value"]}
    if host == "R4":  # R4 is read from R4B models, whose Extension allows two types 4.0.1 does not
        types -= set(TABLE.constants["extensionValueTypesR4BOnly"])
    return frozenset(types)


def _is_absolute(url: str) -> bool:
    return ":" in url


class ExtensionCodec:
    """Encodes element values as extensions in ``host`` resources, and decodes them back."""

    def __init__(self, host: FhirVersion) -> None:
        self.host = host
        self._allowed = _allowed_value_types(host)

    # --- encoding -------------------------------------------------------------------------------
    def encode(self, elem: Elem, value: Any, under: Any, url: str) -> list[dict[str, Any]]:
        """One extension per value of ``elem`` (a list element gives one per item, in order)."""
        if not elem.many:
            return [self._encode_one(elem, value, under, url)]
        values = value if isinstance(value, list) else []
        unders = under if isinstance(under, list) else []
        count = max(len(values), len(unders))
        return [
            self._encode_one(
                elem,
                values[i] if i < len(values) else None,
                unders[i] if i < len(unders) else None,
                url,
            )
            for i in range(count)
        ]

    def _encode_one(self, elem: Elem, value: Any, under: Any, url: str) -> dict[str, Any]:
        ext: dict[str, Any] = {"url": url}
        if elem.kind == "resource":
            raise UnrepresentableElementError(f"a resource-typed element cannot travel in an extension ({url})")
        if elem.kind == "primitive":
            type_name = elem.ext_type if elem.ext_type in self._allowed else "String"
            if value is not None:
                ext["value" + type_name] = value if type_name == elem.ext_type else str(value)
            if under is not None:
                ext["_value" + type_name] = under
            return ext
        if elem.kind == "datatype" and elem.ext_type in self._allowed:
            ext["value" + elem.ext_type] = value
            return ext
        if elem.type == "CodeableReference" and not elem.choice and isinstance(value, dict) and len(value) == 1:
            # Hosts without CodeableReference (R4) still say most of them with a plain value (not
            # for a choice element, where valueCodeableConcept would read back as that type).
            (part,) = value
            if part == "concept":
                return {"url": url, "valueCodeableConcept": value["concept"]}
            if part == "reference":
                return {"url": url, "valueReference": value["reference"]}
        return self._encode_complex(elem, value, url)

    def _encode_complex(self, elem: Elem, value: Any, url: str) -> dict[str, Any]:
        assert elem.cls is not None
        ext: dict[str, Any] = {"url": url}
        subs: list[dict[str, Any]] = []
        children = element_map(elem.cls)
        for key, child_value in value.items():
            if key == "id":
                ext["id"] = child_value
            elif key == "extension":
                subs.extend(child_value)  # absolute URLs: told apart from children by that
            elif key == "modifierExtension":
                subs.append({"url": "modifierExtension", "extension": child_value})
            elif key.startswith("_"):
                if key[1:] not in value:  # a primitive with only an id/extension
                    child = children.get(key[1:])
                    if child is None:
                        raise UnrepresentableElementError(f"unknown element {key[1:]!r} under {url}")
                    subs.extend(self.encode(child, None, child_value, child.name))
            else:
                child = children.get(key)
                if child is None:
                    raise UnrepresentableElementError(f"unknown element {key!r} under {url}")
                subs.extend(self.encode(child, child_value, value.get("_" + key), child.name))
        ext["extension"] = subs
        return ext

    # --- decoding -------------------------------------------------------------------------------
    def decode(self, candidates: tuple[Elem, ...], exts: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The element value(s) the extensions carry, as JSON properties (``key`` and ``_key``).

        ``candidates`` are the element's definitions in the version being restored (several for a
        choice element). Raises :class:`DecodeError` when an extension does not fit them.
        """
        out: dict[str, Any] = {}
        for ext in exts:
            elem, value, under = self._decode_one(candidates, ext)
            if elem.many:
                values = out.setdefault(elem.key, [])
                unders = out.setdefault("_" + elem.key, [])
                values.append(value)
                unders.append(under)
            else:
                if elem.key in out or "_" + elem.key in out:
                    raise DecodeError(f"more than one value for the single element {elem.key!r}")
                out[elem.key] = value
                out["_" + elem.key] = under
        return _tidy(out)

    def _decode_one(self, candidates: tuple[Elem, ...], ext: dict[str, Any]) -> tuple[Elem, Any, Any]:
        value_keys = [k for k in ext if k.startswith(("value", "_value"))]
        if value_keys:
            suffix = value_keys[0].lstrip("_")[len("value") :]
            value, under = ext.get("value" + suffix), ext.get("_value" + suffix)
            for elem in candidates:
                if elem.ext_type == suffix and elem.kind in ("primitive", "datatype"):
                    return elem, value, under
            for elem in candidates:
                if elem.type == "CodeableReference" and suffix in ("CodeableConcept", "Reference"):
                    return elem, {"concept" if suffix == "CodeableConcept" else "reference": value}, None
            primitives = [e for e in candidates if e.kind == "primitive"]
            if suffix == "String" and len(primitives) == 1:  # a primitive type the host lacks
                return primitives[0], value, under
            raise DecodeError(f"value{suffix} does not fit the element")
        names = {sub.get("url", "") for sub in ext.get("extension", [])}
        names = {n for n in names if not _is_absolute(n) and n != "modifierExtension"}
        complex_elems = [
            e for e in candidates if e.kind in ("backbone", "datatype") and names <= set(elements_by_name(e.cls))
        ]
        if len(complex_elems) != 1:
            raise DecodeError("a complex extension must fit exactly one of the element's types")
        elem = complex_elems[0]
        assert elem.cls is not None
        children = elements_by_name(elem.cls)
        item: dict[str, Any] = {}
        if "id" in ext:
            item["id"] = ext["id"]
        grouped: dict[str, list[dict[str, Any]]] = {}
        for sub in ext.get("extension", []):
            url = sub.get("url", "")
            if _is_absolute(url):
                item.setdefault("extension", []).append(sub)
            elif url == "modifierExtension":
                item["modifierExtension"] = sub.get("extension", [])
            elif url in children:
                grouped.setdefault(url, []).append(sub)
            else:
                raise DecodeError(f"unknown child {url!r}")
        for name, subs in grouped.items():
            item.update(self.decode(children[name], subs))
        return elem, item, None


def _tidy(props: dict[str, Any]) -> dict[str, Any]:
    """Drop ``_key`` entries that carry nothing (None, or a list of Nones)."""
    out = {}
    for key, value in props.items():
        if key.startswith("_") and (value is None or (isinstance(value, list) and all(v is None for v in value))):
            continue
        out[key] = value
    return out
