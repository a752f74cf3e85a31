"""The read-only FHIR facade: ``/fhir/metadata``, ``/fhir/{type}/{id}`` and ``/fhir/{type}?…``.

Other services consume the case-management resources here as standard FHIR (R4 by default, R5 on
request), without learning the case-management API. The router is self-contained: the app hands it
a store dependency and the dependency that authenticates (and authorises) a reader, and mounts it::

    app.include_router(build_fhir_router(get_store, require_fhir_reader,
                                         identifier_system=settings.identifier_system))

Every answer is ``application/fhir+json`` with its ``fhirVersion``; every error — including a 401/403
from the auth dependency, an unknown path or a write attempt — is an OperationOutcome, converted
here by the route class, so no problem+json and no bare 500 leaves ``/fhir``. ``/fhir/metadata`` is
public, as FHIR clients (and SMART) expect to read it before they authenticate.
"""

from __future__ import annotations

import datetime as dt
import http
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute

from fhir_cm.config import DEFAULT_IDENTIFIER_SYSTEM
from fhir_cm.store import StoreUnavailable

from ... import decimals
from ..facade import (
    DEFAULT_COUNT,
    DEFAULT_VERSION,
    MAX_COUNT,
    RESOURCE_TYPES,
    FacadeError,
    FacadeIndex,
    FhirVersion,
    MethodNotAllowed,
    FacadeNotFound,
    UnknownResourceType,
    capability_statement,
    content_type,
    issue,
    issue_code_for_status,
    negotiate_version,
    operation_outcome,
    InvalidSearch,
    page_of,
    parse_read,
    parse_search,
    searchset,
    shape_resource,
    sort_matches,
    UnsupportedMediaType,
    base_key,
)

__all__ = ["FHIR_JSON", "AuditHook", "build_fhir_router"]

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"

#: Called after a successful read or search with (principal, "read" | "search", ids of the cases served).
AuditHook = Callable[[Any, str, list[str]], None]


class _FhirJSON(Response):
    """Declares ``application/fhir+json`` in the OpenAPI document; the routes set the full Content-Type."""

    media_type = FHIR_JSON


def _resource_answer(description: str, resource_type: str | None = None) -> dict[str, Any]:
    """The 200 of a façade route as OpenAPI should say it: a FHIR resource (JSON object)."""
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}},
        "additionalProperties": True,
    }
    if resource_type is not None:
        schema["properties"]["resourceType"] = {"type": "string", "enum": [resource_type]}
    return {"description": description, "content": {FHIR_JSON: {"schema": schema}}}


def _version_or_default(request: Request) -> FhirVersion:
    try:
        return _version(request)
    except FacadeError:
        return DEFAULT_VERSION


def _version(request: Request, items: Sequence[tuple[str, str]] | None = None) -> FhirVersion:
    """The version to answer in; ``items`` are a search's parameters when they are more than the query
    (``POST _search``: the form body's ``_fhirVersion`` and ``_format`` count as the query's would)."""
    pairs = request.query_params.multi_items() if items is None else items
    return negotiate_version(
        [v for k, v in pairs if k == "_fhirVersion"],
        [v for k, v in pairs if k == "_format"],
        request.headers.get("accept"),
    )


def _fhir_response(
    body: bytes, version: FhirVersion, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    all_headers = {"Vary": "Accept", **(headers or {})}
    return Response(body, status_code=status, headers=all_headers, media_type=content_type(version))


def _http_status(exc: Exception) -> int | None:
    """The HTTP status an exception from outside the facade carries (HTTPException, the API's problems)."""
    for name in ("status_code", "status"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and 400 <= value <= 599:
            return value
    return None


def _error_response(request: Request, exc: Exception) -> Response:
    """Any exception as an OperationOutcome response; nothing else leaves the facade."""
    version = _version_or_default(request)
    if isinstance(exc, FacadeError):
        return _fhir_response(decimals.dumps(exc.outcome()), version, exc.status, exc.headers)
    if isinstance(exc, StoreUnavailable):
        outcome = operation_outcome([issue("error", "transient", "the store is unavailable or busy; try again")])
        return _fhir_response(decimals.dumps(outcome), version, 503, {"Retry-After": "1"})
    status = _http_status(exc)
    if status is None:
        # The message may hold data from the request or the store: log the type only.
        log.error("FHIR facade: unexpected %s", type(exc).__name__)
        outcome = operation_outcome([issue("fatal", "exception", "an unexpected error occurred")])
        return _fhir_response(decimals.dumps(outcome), version, 500)
    detail = getattr(exc, "detail", None)
    known = status in http.HTTPStatus._value2member_map_
    text = detail if isinstance(detail, str) and detail else http.HTTPStatus(status).phrase if known else "error"
    headers = getattr(exc, "headers", None)
    outcome = operation_outcome([issue("error", issue_code_for_status(status), text)])
    return _fhir_response(decimals.dumps(outcome), version, status, headers if isinstance(headers, Mapping) else None)


class _FacadeRoute(APIRoute):
    """A route whose every failure — in the endpoint or in its dependencies (auth) — becomes an OperationOutcome.

    App-level exception handlers are the app's business and may render problem+json; catching here,
    around dependency resolution, keeps FHIR clients' errors FHIR whatever app mounts the router.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def facade(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return _error_response(request, exc)

        return facade


def _served(resource_type: str) -> str:
    if resource_type not in RESOURCE_TYPES:
        raise UnknownResourceType(
            f"this FHIR facade does not serve that resource type; it serves {', '.join(RESOURCE_TYPES)}"
        )
    return resource_type


def _handling(prefer: str | None) -> str | None:
    """The ``handling`` preference of the ``Prefer`` header (``strict`` or ``lenient``), if any; its
    lines joined first, as HTTP reads several lines of one field (a client may send one per preference)."""
    for part in (prefer or "").split(","):
        name, _, value = part.split(";")[0].strip().partition("=")
        if name.strip().lower() == "handling" and value.strip().strip('"').lower() in ("strict", "lenient"):
            return value.strip().strip('"').lower()
    return None


def _base_url(request: Request, suffix: str) -> str:
    return str(request.url.replace(query="")).removesuffix(suffix).rstrip("/")


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {FHIR_JSON: {}}}
    for status, text in {
        400: "Bad parameter value, unsupported modifier, or an unknown parameter with Prefer: handling=strict",
        401: "No valid credentials",
        403: "Credentials whose role may not read the facade",
        404: "Unknown resource type or id",
        406: "Only a FHIR version or format the facade cannot produce is acceptable",
    }.items()
}

_STRING: dict[str, Any] = {"type": "string"}
#: What each search parameter takes, as ``parse_search`` and the negotiation read it.
_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "_count": {"type": "integer", "minimum": 0},
    "_offset": {"type": "integer", "minimum": 0},
    "_fhirVersion": {"type": "string", "enum": ["4.0", "4.0.1", "R4", "5.0", "5.0.0", "R5"]},
    "_format": {
        "type": "string",
        "enum": ["json", "application/fhir+json", "application/json", "application/json+fhir"],
    },
    "_summary": {"type": "string", "enum": ["true", "text", "data", "count", "false"]},
}
_SEARCH_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": _QUERY_SCHEMAS.get(name, _STRING), "description": text}
    for name, text in {
        "patient": "Patient: id, Patient/id or URL",
        "subject": "Subject: Type/id, id or URL",
        "status": "Status code(s), comma-separated",
        "category": "Category token: code, system|code, |code",
        "identifier": "Identifier token: value, system|value, |value",
        "_lastUpdated": "Date with prefix (eq, ne, gt, ge, lt, le, sa, eb)",
        "_id": "Logical id(s)",
        "_count": "Page size (default 20, at most 200)",
        "_offset": "Where the page starts (use the links)",
        "_fhirVersion": "4.0 (default) or 5.0",
        "_format": "json",
        "_summary": "true (summary elements), text (text and mandatory elements), data (all but text), "
        "count (the total only) or false; a subset is tagged SUBSETTED",
    }.items()
]

#: What a read takes besides the version negotiation: the subset of the resource to return.
_READ_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
    for name, schema, text in (
        (
            "_elements",
            _STRING,
            "Top-level elements to return (the mandatory ones kept; the resource tagged SUBSETTED)",
        ),
        (
            "_summary",
            {"type": "string", "enum": ["true", "text", "data", "false"]},
            "true (summary elements), text (text and mandatory elements), data (all but text) — tagged "
            "SUBSETTED, not with _elements — or false (the whole resource); count is for searches only",
        ),
    )
]


def build_fhir_router(
    get_store: Callable[..., Any],
    require_reader: Callable[..., Any],
    *,
    identifier_system: str = DEFAULT_IDENTIFIER_SYSTEM,
    prefix: str = "/fhir",
    default_count: int = DEFAULT_COUNT,
    max_count: int = MAX_COUNT,
    audit: AuditHook | None = None,
    index: FacadeIndex | None = None,
) -> APIRouter:
    """The facade's router, mounted at ``prefix``.

    ``get_store`` is a dependency returning the open ``Store`` (the index reads it as it needs: a lookup
    when nothing changed, a snapshot when something did); ``require_reader`` a dependency
    that authenticates the caller and returns the principal (raising a 401/403 ``HTTPException``,
    or any exception with such a ``status``, otherwise). ``identifier_system`` is the system of the
    adapter's business identifiers, whose values are the facade's resource ids. ``audit``, when
    given, hears of every successful read and search with the ids of the cases whose resources
    were served (the searchset page's, not all matches'). ``index``, when given, is the one the
    router answers from (the app warms it at start-up).
    """
    if not 0 < default_count <= max_count:
        raise ValueError("default_count must be between 1 and max_count")
    router = APIRouter(prefix=prefix, route_class=_FacadeRoute, tags=["FHIR facade"])
    index = index if index is not None else FacadeIndex(identifier_system)
    published = dt.datetime.now(dt.UTC).replace(microsecond=0)
    reader = Depends(require_reader)
    store_dep = Depends(get_store)

    def audited(principal: Any, action: str, case_ids: set[str]) -> None:
        if audit is not None:
            audit(principal, action, sorted(case_ids))

    @router.get(
        "/metadata",
        response_class=_FhirJSON,
        summary="CapabilityStatement (public)",
        responses={200: _resource_answer("The CapabilityStatement", "CapabilityStatement"), 406: _ERRORS[406]},
    )
    def metadata(request: Request) -> Response:
        """What the facade serves: types, read and search-type, search parameters; R4 or R5 as negotiated."""
        version = _version(request)
        statement = capability_statement(
            version,
            _base_url(request, "/metadata"),
            identifier_system=identifier_system,
            published=published,
            default_count=default_count,
            max_count=max_count,
        )
        return _fhir_response(decimals.dumps(statement), version)

    def search(request: Request, resource_type: str, principal: Any = reader, store: Any = store_dep) -> Response:
        """A searchset Bundle of one page, with total and self/first/previous/next/last links."""
        suffix = "/_search" if request.url.path.endswith("/_search") else ""
        return answer_search(request, resource_type, request.query_params.multi_items(), principal, store, suffix)

    for path in ("/{resource_type}", "/{resource_type}/_search"):
        # ``GET [type]/_search?…`` (HAPI serves it, its client sends it) is the same search: ``_search``
        # is no FHIR id (no ``_`` in one), and read as one it answered "no Goal with this id".
        router.get(
            path,
            response_class=_FhirJSON,
            summary="Search a resource type" + (" (GET on _search, as HAPI serves it)" if "_search" in path else ""),
            responses={200: _resource_answer("A searchset Bundle", "Bundle"), **_ERRORS},
            openapi_extra={"parameters": _SEARCH_QUERY},
            name=None if path == "/{resource_type}" else "search_on_search",
        )(search)

    @router.get(
        "/{resource_type}/{resource_id}",
        response_class=_FhirJSON,
        summary="Read a resource",
        responses={200: _resource_answer("The resource"), **_ERRORS},
        openapi_extra={"parameters": _READ_QUERY},
    )
    def read(
        request: Request, resource_type: str, resource_id: str, principal: Any = reader, store: Any = store_dep
    ) -> Response:
        """One resource by id (its business-identifier value), with ETag and Last-Modified; ``_elements``
        and ``_summary`` as a search takes them, a subset tagged SUBSETTED."""
        _served(resource_type)
        version = _version(request)
        shape = parse_read(resource_type, request.query_params.multi_items())
        found = index.read(store, version, resource_type, resource_id)
        if found is None:
            raise FacadeNotFound(f"no {resource_type} with this id")
        audited(principal, "read", {found.case_id})
        return _fhir_response(
            decimals.dumps(shape_resource(found.body, version, summary=shape.summary, elements=shape.elements)),
            version,
            headers={
                "ETag": f'W/"{found.version_id}"',
                "Last-Modified": format_datetime(found.last_updated, usegmt=True),
            },
        )

    @router.post(
        "/{resource_type}/_search",
        response_class=_FhirJSON,
        summary="Search a resource type (parameters in a form body)",
        responses={200: _resource_answer("A searchset Bundle", "Bundle"), **_ERRORS},
        openapi_extra={
            "requestBody": {
                "required": False,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "properties": {p["name"]: p["schema"] for p in _SEARCH_QUERY},
                            "additionalProperties": True,
                        }
                    }
                },
            }
        },
    )
    async def search_by_post(
        request: Request, resource_type: str, principal: Any = reader, store: Any = store_dep
    ) -> Response:
        """The same search with its parameters in an ``application/x-www-form-urlencoded`` body (and the query)."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await request.body()
        if raw and media != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("POST _search takes an application/x-www-form-urlencoded body")
        try:
            form = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw.strip()))
        except (UnicodeDecodeError, ValueError):
            raise InvalidSearch("the _search body is not a form (name=value&…)") from None
        items = [*request.query_params.multi_items(), *form]
        return answer_search(request, resource_type, items, principal, store, "/_search")

    def answer_search(
        request: Request, resource_type: str, items: list[tuple[str, str]], principal: Any, store: Any, suffix: str
    ) -> Response:
        _served(resource_type)
        version = _version(request, items)
        handling = _handling(", ".join(request.headers.getlist("prefer")))
        parsed = parse_search(
            resource_type,
            items,
            strict=handling != "lenient",
            default_count=default_count,
            max_count=max_count,
            own=index.bases | {base_key(str(request.base_url).rstrip("/") + prefix)},
        )
        matches, unmapped = index.search(store, version, resource_type, parsed.criteria)
        matches = sort_matches(matches, parsed.sort)
        included = index.related(version, page_of(matches, parsed), parsed)
        url = _base_url(request, suffix)
        body, page = searchset(
            url, resource_type, parsed, matches, version=version, unmapped_cases=unmapped, included=included
        )
        audited(principal, "search", {r.case_id for r in [*page, *included]})
        applied = {"Preference-Applied": f"handling={handling}"} if handling else None
        return _fhir_response(body, version, headers=applied)

    @router.api_route("/metadata", methods=["POST", "PUT", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False)
    def metadata_written(request: Request) -> Response:
        """A write to the public CapabilityStatement: 405, without a key (whoever may read it knows it is there)."""
        raise MethodNotAllowed("this FHIR facade is read-only: GET only", headers={"Allow": "GET"})

    @router.api_route(
        "/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False
    )
    def elsewhere(request: Request, path: str, principal: Any = reader) -> Response:
        """Whatever no route above answers: a write (405: the facade is read-only) or an unknown path (404).

        Only for a caller the reads would serve: without a valid key this is a 401 as on every other
        path, so the 404s and 405s tell no stranger which paths or types the facade has.
        """
        first = path.strip("/").split("/")[0]
        if request.method != "GET" and first in RESOURCE_TYPES:
            raise MethodNotAllowed("this FHIR facade is read-only: GET only", headers={"Allow": "GET"})
        _served(first)
        raise FacadeNotFound("this FHIR facade supports read and search-type only")

    return router
