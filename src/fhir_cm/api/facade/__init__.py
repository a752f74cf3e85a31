"""The read-only FHIR façade at ``/fhir``: the case-management resources as a FHIR server serves them.

Its parts, each with one job: version negotiation (``_negotiation``), the search parameters it
declares and parses (``_params``, ``_match``), an index of the stored resources answering searches
(``_index``), searchset Bundles (``_bundle``), resources cut down by ``_summary`` / ``_elements``
(``_summary``), the CapabilityStatement (``_capability``) and
OperationOutcome errors (``_errors``). The routes in ``api/routes/fhir.py`` only join them.
"""

from ._bundle import page_of, searchset, sort_matches
from ._capability import capability_statement
from ._errors import (
    FacadeError,
    InvalidSearch,
    MethodNotAllowed,
    NotAcceptable,
    FacadeNotFound,
    UnknownResourceType,
    UnsupportedMediaType,
    UnsupportedParameter,
    issue,
    issue_code_for_status,
    operation_outcome,
)
from ._index import FacadeIndex
from ._match import base_key
from ._negotiation import DEFAULT_VERSION, FhirVersion, content_type, negotiate_version
from ._params import DEFAULT_COUNT, MAX_COUNT, RESOURCE_TYPES, includes_for, parse_read, parse_search, revincludes_for
from ._summary import shape_resource

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_VERSION",
    "MAX_COUNT",
    "RESOURCE_TYPES",
    "FacadeError",
    "FacadeIndex",
    "FhirVersion",
    "InvalidSearch",
    "MethodNotAllowed",
    "NotAcceptable",
    "FacadeNotFound",
    "UnknownResourceType",
    "UnsupportedMediaType",
    "UnsupportedParameter",
    "base_key",
    "capability_statement",
    "content_type",
    "issue",
    "issue_code_for_status",
    "negotiate_version",
    "operation_outcome",
    "includes_for",
    "page_of",
    "parse_read",
    "parse_search",
    "revincludes_for",
    "searchset",
    "shape_resource",
    "sort_matches",
]
