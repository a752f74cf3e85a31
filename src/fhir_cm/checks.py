"""Whether a resource read from a server can be taken in: its release's strict model, then the mapping.

Every resource a pull or the transitions tracker takes in passes these checks first. They need
nothing but the resource, which is why they live apart from ``sync``: a large pull runs them in a
worker process (``sync._checks.Checker``), and a worker that imports only this module, the FHIR
models and the mapping starts in half the time and memory of one that loads the sync layer, the
store and its database drivers. Reasons carry where and why, never values (they may be personal
data), so they can be logged and quarantined as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from . import decimals
from .fhir import FhirRelease, UnsupportedByServer, model_class, validate
from .mapping import FhirVersion, MappingError, read_resource

__all__ = [
    "MAPPING_PROBLEM",
    "SUBSETTED_PROBLEM",
    "TOO_DEEP_PROBLEM",
    "load_models",
    "mapping_problem",
    "problem_of",
    "problems_of",
    "strict_problem",
]

#: How a mapping refusal's reason starts, so the pull can tell it from the strict model's.
MAPPING_PROBLEM = "not readable as case data: "

_MAX_REASON = 300


def _release(version: FhirVersion) -> FhirRelease:
    return FhirRelease.R5 if version == "R5" else FhirRelease.R4


def strict_problem(resource: Mapping[str, Any], version: FhirVersion) -> str | None:
    """Why the release's fhir.resources model refuses ``resource``, or None if it accepts it."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return "a resource without a resourceType"
    if _subsetted(resource):
        return SUBSETTED_PROBLEM
    try:
        decimals.dumps(resource)  # what the store writes it with
    except TypeError:
        return "nested deeper than the store keeps (254 levels)"
    try:
        validate(model_class(_release(version), rtype), resource)
    except UnsupportedByServer as exc:
        return str(exc)[:_MAX_REASON]
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:3]]
        more = exc.error_count() - len(parts)
        return ("; ".join(parts) + (f" (+{more} more)" if more > 0 else ""))[:_MAX_REASON]
    return None


#: Why a resource the server marked as partial is refused (FHIR: such a copy is never to be taken for
#: the whole; taking it would overwrite the case with less).
SUBSETTED_PROBLEM = "the server sent part of the resource (meta.tag SUBSETTED): not taken as its copy"
_SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")


def _subsetted(resource: Mapping[str, Any]) -> bool:
    meta = resource.get("meta")
    tags = meta.get("tag") if isinstance(meta, Mapping) else None
    return isinstance(tags, list) and any(
        isinstance(t, Mapping) and (t.get("system"), t.get("code")) == _SUBSETTED for t in tags
    )


def mapping_problem(resource: Mapping[str, Any], version: FhirVersion, system: str) -> str | None:
    """Why the mapping cannot read ``resource`` as case data, or None."""
    try:
        read_resource(resource, version, system)
    except (MappingError, ValueError) as exc:
        return f"{MAPPING_PROBLEM}{str(exc)[:250]}"
    return None


#: Why a resource nested deeper than the models recurse is refused (some 120 extensions within each
#: other: JSON that deep parses, and the store could keep it, but checking it overflows the stack).
TOO_DEEP_PROBLEM = "nested too deep to check"


def problem_of(resource: Mapping[str, Any], version: FhirVersion, system: str) -> str | None:
    """Why a pulled resource cannot be taken in: its release's strict model first, then the mapping.

    A resource too deep to check is quarantined with its reason like any other refusal: raised, the
    RecursionError ended the pull (or its check worker) at that page, every pull after it too.
    """
    try:
        return strict_problem(resource, version) or mapping_problem(resource, version, system)
    except RecursionError:
        return TOO_DEEP_PROBLEM


def problems_of(raw: bytes, version: FhirVersion, system: str) -> list[str | None]:
    """``problem_of`` for each resource of a JSON array: what a check worker runs for a page."""
    return [problem_of(r, version, system) for r in orjson.loads(raw)]


def load_models(version: FhirVersion, types: Iterable[str]) -> None:
    """Load the release's models of ``types`` now (a worker does it while it starts, before a page
    reaches it)."""
    release = _release(version)
    for rtype in types:
        model_class(release, rtype)
