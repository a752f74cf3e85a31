"""Reading an import file: FHIR resources and Bundles (R4 or R5), or the domain's case JSON.

A file holds one JSON document (a resource, a Bundle of any type, a case, or an array of these) or
JSON lines of them. Bundles are opened (nested ones too; a searchset's ``outcome`` entry, the
server's message about the search, is no data and is left out; a ``history`` lists a resource's
versions newest first, so only its first entry for a resource is taken — none when that one is a
deletion); every resource in them is checked against
the fhir.resources models of both releases, and the release is decided per resource: the one whose
models accept it; when both do (the elements it uses are the same in both), the release the rest of
its file — else of the whole import — was found to be; else ``default_version``. A forced version
checks against that release only. What neither release accepts stops the import, naming the file and
the position, so nothing of that file is half taken in; so does a null, an empty array or an empty
object, which FHIR JSON forbids and the models let through.

A document without ``resourceType`` is read as a case (``fhir-cm generate`` writes those).

A ``urn:uuid`` names a resource only inside its Bundle (Synthea's transactions, and most EHRs'
exports, reference the patient and each other that way): as a server does on a transaction, a
reference to an entry's ``urn:uuid`` (or ``urn:oid``) fullUrl is read as ``Type/id`` of that entry
(an entry without an id gets the uuid, or the OID, as its id; :func:`resolve_bundle_references`),
and so is a conditional reference (``Organization?identifier=system|value``, Synthea's to its
providers) that one entry of the file answers; a reference by identifier only is given the ``Type/id`` of the one entry (else the one
stored patient) holding that identifier, beside it (``_logical.py``). Kept as it came, a reference
would name no patient (the case would be ``unidentified``) nor provider, and dangle in an export,
whose fullUrls are the adapter's own — which are left as they are, being what the adapter reads
and writes. An absolute reference at the base of the file's absolute fullUrls (the server it came
from) is read as relative, which it means there; one to any other base (or any, in a file with no
such fullUrls) names a resource of another server and stays as written: the import never reads it as
a local resource (``https://other.example/fhir/Patient/1`` is not the local ``Patient/1``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote
from typing import Any

import fhir.resources as r5_models
import fhir.resources.R4B as r4_models
import fhir.resources.R4B.resource as r4_resource
import fhir.resources.resource as r5_resource
import orjson
from pydantic import ValidationError

from .. import decimals
from ..fhir import validate
from ..domain import Case
from ..mapping import FhirVersion, References, ResourceKey, reference_base, replace_references, resource_key
from ._errors import BadInputError
from ._logical import Known, name_logical_references

__all__ = [
    "CaseItem",
    "FhirItem",
    "ParsedFile",
    "decide_versions",
    "key_of",
    "parse_file",
    "parse_text",
    "resolve_bundle_references",
]

_VERSIONS: tuple[FhirVersion, ...] = ("R4", "R5")
_MODELS = {"R4": r4_models, "R5": r5_models}


@dataclass
class FhirItem:
    """One resource read from a file, with the releases whose models accept it and, once decided, its own."""

    resource: dict[str, Any]
    where: str
    accepted: tuple[FhirVersion, ...]
    full_url: str | None = None
    version: FhirVersion | None = None


@dataclass(frozen=True)
class CaseItem:
    """A case in the domain's JSON."""

    case: Case
    where: str


@dataclass
class ParsedFile:
    """Everything one file holds, in file order."""

    name: str
    resources: list[FhirItem] = field(default_factory=list)
    cases: list[CaseItem] = field(default_factory=list)


#: Each release's base of every resource; the abstract ones themselves are no resource a file can hold.
_RESOURCE_BASES = {"R4": r4_resource.Resource, "R5": r5_resource.Resource}
_ABSTRACT = frozenset({"Resource", "DomainResource"})


@functools.cache
def _model(version: FhirVersion, resource_type: str) -> Any:
    """The release's model of a resource type, or None: fhir.resources also answers for data types
    (``HumanName``, ``Coding``) and the abstract bases, which would pass as resources and be exported
    as Bundle entries no FHIR reader takes."""
    try:
        model = _MODELS[version].get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None
    if resource_type in _ABSTRACT or not issubclass(model, _RESOURCE_BASES[version]):
        return None
    return model


def _problem(resource: Mapping[str, Any], version: FhirVersion) -> str | None:
    """Why ``version``'s model refuses ``resource`` (locations and messages only), or None."""
    model = _model(version, str(resource["resourceType"]))
    if model is None:
        return f"{resource['resourceType']} is not a FHIR {version} resource type"
    try:
        validate(model, resource)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or resource['resourceType']}: {e['msg']}" for e in exc.errors()[:2]
        ]
        more = exc.error_count() - len(parts)
        return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
    except (TypeError, ValueError) as exc:  # a validator that raised outside pydantic's machinery
        return type(exc).__name__
    except RecursionError:  # the models recurse per level: some 120 nested extensions are too many
        return "nested too deep to check"
    return None


def _empty(value: Any, path: str) -> str | None:
    """Where ``value`` holds what FHIR JSON forbids and the models let through: a property that is
    null, an empty array or an empty object, or an empty object or array in an array (a null there
    is how a primitive array lines up with its ``_`` extensions). A server refuses such a resource,
    and export would give it back as it came."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if item is None or item == [] or item == {}:
                kind = "null" if item is None else "an empty array" if item == [] else "an empty object"
                return f"{where} is {kind}"
            if found := _empty(item, where):
                return found
    elif isinstance(value, list):
        for n, item in enumerate(value):
            if item == [] or item == {}:
                return f"{path}[{n}] is {'an empty array' if item == [] else 'an empty object'}"
            if found := _empty(item, f"{path}[{n}]"):
                return found
    return None


def _documents(text: str, name: str) -> Iterator[tuple[str, Any]]:
    """``(where, document)``: one JSON document (or an array's items), else JSON lines."""
    try:
        whole = json.loads(text, parse_float=decimals.number, parse_int=decimals.integer)
    except RecursionError:
        raise BadInputError(name, "document", "not JSON this reads (nested too deep)") from None
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":  # broken JSON, not several documents one after another
            raise BadInputError(name, f"line {exc.lineno}, column {exc.colno}", f"not JSON ({exc.msg})") from None
    else:
        if isinstance(whole, list):
            yield from ((f"item {i}", doc) for i, doc in enumerate(whole, 1))
        else:
            yield "document", whole
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line, parse_float=decimals.number, parse_int=decimals.integer)
        except RecursionError:
            raise BadInputError(name, f"line {number}", "not JSON this reads (nested too deep)") from None
        except json.JSONDecodeError as exc:
            raise BadInputError(name, f"line {number}, column {exc.colno}", f"not JSON ({exc.msg})") from None


def _resources(doc: Any, where: str, name: str) -> Iterator[tuple[dict[str, Any], str, str | None]]:
    """The resources of a document, Bundles opened: ``(resource, where, fullUrl)``."""
    rtype = doc.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise BadInputError(name, where, "not a FHIR resource: resourceType is missing or not a string")
    if rtype != "Bundle":
        yield doc, where, None
        return
    entries = doc.get("entry")
    if entries is not None and not isinstance(entries, list):
        raise BadInputError(name, where, "Bundle.entry is not an array")
    history = doc.get("type") == "history"
    newer: set[str] = set()  # a history's resources ("Type/id") whose newest version is past
    for n, entry in enumerate(entries or (), 1):
        if not isinstance(entry, dict):
            raise BadInputError(name, f"{where}, entry {n}", "not a JSON object")
        inner = entry.get("resource")
        if history and (named := _history_name(entry, inner)) is not None:
            if named in newer:
                continue  # an older version: the newest came first
            newer.add(named)
        if inner is None:
            continue  # a Bundle entry may carry only a request (a history's deletion) or a response
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue  # the server's message about a search (an OperationOutcome), no data of a case
        if not isinstance(inner, dict):
            raise BadInputError(name, f"{where}, entry {n}", "entry.resource is not a JSON object")
        url = entry.get("fullUrl")
        for resource, place, nested_url in _resources(inner, f"{where}, entry {n}", name):
            yield resource, place, nested_url or (url if isinstance(url, str) else None)


def _history_name(entry: Mapping[str, Any], resource: Any) -> str | None:
    """``Type/id`` of a history Bundle's entry: its resource's, or its request's (a deletion has no resource)."""
    if (
        isinstance(resource, dict)
        and isinstance(resource.get("resourceType"), str)
        and isinstance(resource.get("id"), str)
    ):
        return f"{resource['resourceType']}/{resource['id']}"
    request = entry.get("request")
    url = request.get("url") if isinstance(request, dict) else None
    parts = url.split("?", 1)[0].split("/") if isinstance(url, str) else []
    return "/".join(parts[:2]) if len(parts) >= 2 else None


def _case(doc: dict[str, Any], where: str, name: str) -> Case:
    try:
        return Case.model_validate(doc)
    except ValidationError as exc:
        if not {"programme", "patient", "period"} & doc.keys():
            raise BadInputError(name, where, "neither a FHIR resource (no resourceType) nor a case") from None
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "case"
        raise BadInputError(name, where, f"invalid case: {loc}: {err['msg']}") from None


def parse_text(text: str, name: str, *, forced: FhirVersion | None = None) -> ParsedFile:
    """Parse one file's text (``name`` is only for messages); versions are left to :func:`decide_versions`."""
    parsed = ParsedFile(name)
    for where, doc in _documents(text, name):
        if not isinstance(doc, dict):
            raise BadInputError(name, where, f"expected a JSON object, found {type(doc).__name__}")
        if "resourceType" not in doc:
            parsed.cases.append(CaseItem(_case(doc, where, name), where))
            continue
        for resource, place, full_url in _resources(doc, where, name):
            tried = (forced,) if forced else _VERSIONS
            problems = {v: _problem(resource, v) for v in tried}
            accepted = tuple(v for v, p in problems.items() if p is None)
            if not accepted:
                why = "; ".join(f"{v}: {p}" for v, p in problems.items())
                raise BadInputError(
                    name, place, f"not a valid FHIR {' or '.join(tried)} {resource['resourceType']} ({why})"
                )
            if empty := _empty(resource, str(resource["resourceType"])):
                raise BadInputError(name, place, f"not valid FHIR JSON: {empty}")
            parsed.resources.append(FhirItem(resource, place, accepted, full_url))
    return parsed


def parse_file(path: str | Path, *, forced: FhirVersion | None = None) -> ParsedFile:
    """Read and parse one file (``-`` is stdin)."""
    name = str(path)
    try:
        # utf-8-sig: files saved by Windows tools start with a byte-order mark, which is no JSON.
        text = sys.stdin.read().removeprefix("\ufeff") if name == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(
            name, None, f"cannot read: {getattr(exc, 'strerror', None) or type(exc).__name__}"
        ) from None
    return parse_text(text, name, forced=forced)


def _sure(items: list[FhirItem]) -> FhirVersion | None:
    """The release most resources accepted by only one release are in, if any."""
    counts = Counter(item.accepted[0] for item in items if len(item.accepted) == 1)
    return counts.most_common(1)[0][0] if counts else None


def decide_versions(files: list[ParsedFile], default_version: FhirVersion) -> None:
    """Set each resource's ``version`` (see the module docstring for the order of evidence)."""
    everything = _sure([item for f in files for item in f.resources])
    for f in files:
        in_file = _sure(f.resources)
        for item in f.resources:
            if len(item.accepted) == 1:
                item.version = item.accepted[0]
            else:
                item.version = in_file or everything or default_version


def key_of(item: FhirItem, identifier_system: str) -> ResourceKey:
    """The store key of a resource: our identifier, else its id, else its Bundle ``urn:uuid``, else a content hash.

    A hash keeps a resource with no name at all importable, and re-importing it idempotent.
    """
    key = resource_key(item.resource, identifier_system)
    if key is not None:
        return key
    rtype = str(item.resource["resourceType"])
    if (local := _bundle_local_id(item.full_url)) is not None:
        return ResourceKey(rtype, local)
    digest = hashlib.sha256(decimals.dumps(item.resource, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return ResourceKey(rtype, f"h-{digest[:40]}")


#: An OID as a FHIR id may spell it (a ``urn:oid`` fullUrl's, which FHIR allows beside ``urn:uuid``).
_OID = re.compile(r"[0-2](?:\.[0-9]+)+")


def _bundle_local_id(full_url: str | None) -> str | None:
    """The id a fullUrl naming its entry only inside its Bundle gives it: a ``urn:uuid``'s uuid, a
    ``urn:oid``'s OID (when it fits in an id), else None."""
    if not full_url:
        return None
    if full_url.startswith("urn:uuid:"):
        return full_url.removeprefix("urn:uuid:")
    oid = full_url.removeprefix("urn:oid:")
    return oid if oid != full_url and len(oid) <= 64 and _OID.fullmatch(oid) else None


def resolve_bundle_references(parsed: ParsedFile, identifier_system: str, known: Known | None = None) -> None:
    """Read references to the file's entries' ``urn:uuid`` fullUrls, and conditional ones
    (``Type?identifier=system|value``) that exactly one entry answers, as ``Type/id`` (see the module
    docstring), in place; a fullUrl the adapter's export gives the entry's key is left alone. A
    reference by identifier only gets the ``Type/id`` of the one entry holding it, else what ``known``
    finds (``_logical.py``)."""
    ours = References(identifier_system)
    literals: dict[str, str] = {}
    answers: dict[str, list[str]] = {}
    holders: dict[tuple[str, str], list[str]] = {}
    for item in parsed.resources:
        url, rid, rtype = item.full_url, item.resource.get("id"), str(item.resource["resourceType"])
        local = _bundle_local_id(url)
        if url and local is not None and url != ours.full_url(key_of(item, identifier_system)):
            rid = rid if isinstance(rid, str) else local
            literals[url] = f"{rtype}/{rid}"
        if not isinstance(rid, str):
            continue
        for identifier in item.resource.get("identifier") or ():
            if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
                system = identifier.get("system") or ""
                answers.setdefault(f"{rtype}?identifier={system}|{identifier['value']}", []).append(f"{rtype}/{rid}")
                holders.setdefault((system, identifier["value"]), []).append(f"{rtype}/{rid}")
    literals |= {asked: found[0] for asked, found in answers.items() if len(set(found)) == 1}
    bases = {b.casefold() for item in parsed.resources if item.full_url and (b := reference_base(item.full_url))}

    def as_local(ref: dict[str, Any]) -> str | None:
        literal = unquote(ref["reference"])
        found = literals.get(literal)
        if found is None and (base := reference_base(literal)) is not None and base.casefold() in bases:
            found = literal[len(base) + 1 :]  # the server the file came from: relative, as it means
        return found

    for item in parsed.resources:
        if literals or bases:
            item.resource = replace_references(item.resource, as_local)
        item.resource = name_logical_references(item.resource, holders, known)
        if item.full_url in literals and "id" not in item.resource:
            item.resource = {**item.resource, "id": literals[item.full_url].split("/", 1)[1]}
