"""The facade's CapabilityStatement: what ``/fhir/metadata`` tells a client before it asks anything else.

Built from the same parameter table the searches use, so it cannot promise a parameter the facade
does not support (or hide one it does). R4 and R5 statements differ only in ``fhirVersion``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_cm import __version__

from ._negotiation import FhirVersion, release
from ._params import RESOURCE_TYPES, includes_for, params_for, revincludes_for

__all__ = ["capability_statement"]

_DOC = (
    "Read-only FHIR facade of fhir-cm: the case-management resources of every case in the adapter's "
    "store. Resource ids are the business-identifier values (system {system}), or the server id of a "
    "resource that carries none. Search results are in id order, paged with _count (default {default}, "
    "at most {maximum}) and next/previous links; _sort, _summary (true, text, data, count, false), "
    "_elements, _include and _revinclude as each type declares; the same search by POST "
    "[type]/_search with a form body (or GET [type]/_search). A reference parameter takes the type it "
    "refers to as a modifier (subject:Patient=123). A read takes _summary (but count) and _elements as a search does. "
    "Unknown search parameters are refused (400), or with Prefer: handling=lenient ignored and "
    "reported in an OperationOutcome entry (search.mode=outcome). "
    "R4 by default; R5 with Accept: application/fhir+json; fhirVersion=5.0 (or ?_fhirVersion=5.0)."
)


def _resource(rtype: str) -> dict[str, Any]:
    return {
        "type": rtype,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "versioned",
        "readHistory": False,
        "updateCreate": False,
        "searchParam": [
            {
                "name": p.name,
                **({"definition": p.definition} if p.definition else {}),
                "type": p.kind,
                "documentation": p.documentation,
            }
            for p in params_for(rtype).values()
        ]
        + [{"name": name, "type": "special", "documentation": text} for name, text in _CONTROL.items()],
        "searchInclude": includes_for(rtype),
        "searchRevInclude": revincludes_for(rtype),
    }


#: The result parameters every type takes.
_CONTROL = {
    "_sort": "_id, _lastUpdated, a token or a date parameter; - for descending; comma-separated keys",
    "_summary": "true (the summary elements, at every level), text (text, id, meta and the mandatory "
    "elements), data (all but text) — each tagged SUBSETTED, included resources too, not with _elements —, "
    "count (the total only) or false",
    "_elements": "Top-level elements to return (and the mandatory ones; the rest left out, the resource tagged SUBSETTED)",
    "_count": "Page size",
}


def capability_statement(
    version: FhirVersion,
    base_url: str,
    *,
    identifier_system: str,
    published: dt.datetime,
    default_count: int,
    max_count: int,
) -> dict[str, Any]:
    """The CapabilityStatement of the facade at ``base_url`` for ``version`` (R4: 4.0.1, R5: 5.0.0)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published.isoformat(),
        "publisher": "fhir-cm",
        "kind": "instance",
        "software": {"name": "fhir-cm", "version": __version__},
        "implementation": {"description": "fhir-cm read-only FHIR facade", "url": base_url},
        "fhirVersion": release(version),
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": _DOC.format(system=identifier_system, default=default_count, maximum=max_count),
                "security": {
                    "cors": False,
                    "description": "Every read and search needs the credentials of the fhir-cm API (an API key "
                    "or a bearer token of a role allowed to read the facade); this statement is public.",
                },
                "resource": [_resource(rtype) for rtype in RESOURCE_TYPES],
            }
        ],
    }
