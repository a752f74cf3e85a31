"""Errors as RFC 9457 problem details (``application/problem+json``), translated at one boundary.

Routes raise a :class:`Problem` subclass (or let a validation, store or HTTP error through);
the handlers here turn every one of them into a problem document naming the field that is wrong.
Under ``/fhir`` the same errors become an ``OperationOutcome`` (``application/fhir+json``), since
FHIR clients expect nothing else. Messages carry ids, field names and reasons, never the values a
client sent: those may be PHI, and error bodies end up in other systems' logs.
"""

from __future__ import annotations

import http
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.responses import Response

from fhir_cm.store import NotFound, StaleRevision, StoreError, StoreUnavailable, UnreadableCase
from fhir_cm.errors import FhirCmError

from .. import decimals

__all__ = [
    "PROBLEM_JSON",
    "BadGateway",
    "ConflictProblem",
    "DataUnavailable",
    "FieldError",
    "ForbiddenProblem",
    "InvalidInput",
    "NotFoundProblem",
    "NotImplementedProblem",
    "PreconditionFailed",
    "Problem",
    "ProblemDocument",
    "UnauthorizedProblem",
    "Unavailable",
    "UnreadableProblem",
    "field_errors",
    "install_problem_handlers",
]

PROBLEM_JSON = "application/problem+json"
FHIR_JSON = "application/fhir+json"
_TYPE = "urn:fhir-cm:problem:"
log = logging.getLogger("fhir_cm.api")


class FieldError(BaseModel):
    """One wrong field: where it is (``body``, ``query``, ``path``, ``header``), its name, and what is wrong."""

    field: str
    location: str = "body"
    message: str


class ProblemDocument(BaseModel):
    """The body of every error response (RFC 9457), as documented in the OpenAPI schema."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] = []
    request_id: str | None = None


class Problem(FhirCmError):
    """An error a route wants the client to see; subclasses fix the status and the problem type."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class InvalidInput(Problem):
    """The request is well-formed but its content is not acceptable (422)."""

    status, slug, title = 422, "invalid-input", "Invalid input"


class UnauthorizedProblem(Problem):
    """No credentials, or credentials that are not a valid, active API key (401)."""

    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, *, error: str | None = None) -> None:
        challenge = 'Bearer realm="fhir-cm"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class ForbiddenProblem(Problem):
    """Valid credentials, but this principal's role may not do this (403)."""

    status, slug, title = 403, "forbidden", "Not allowed"


class NotFoundProblem(Problem):
    """No such thing, or one the caller may not see (404, so existence does not leak)."""

    status, slug, title = 404, "not-found", "Not found"


class ConflictProblem(Problem):
    """The request clashes with the current state (409): an illegal status move, already closed, …"""

    status, slug, title = 409, "conflict", "Conflict"


class UnreadableProblem(ConflictProblem):
    """The case is stored but this version cannot read it (409): stored before a rule of the case
    model. It is kept as it is; `fhir-cm check` names the field, an operator mends it."""

    slug, title = "unreadable-case", "Case cannot be read"


class PreconditionFailed(Problem):
    """``If-Match`` named a revision that is no longer current (412): reload and apply again."""

    status, slug, title = 412, "stale-revision", "Precondition failed"


class DataUnavailable(Problem):
    """The data an answer needs could not be had from the system that holds it (412): CDS Hooks 2.0's
    status for a service that could read its data neither from the prefetch nor from the EHR's server."""

    status, slug, title = 412, "data-unavailable", "Data could not be read"


class NotImplementedProblem(Problem):
    """A feature whose lower layer is not there in this build (501)."""

    status, slug, title = 501, "not-implemented", "Not implemented"


class BadGateway(Problem):
    """The FHIR server answered with an error or not at all (502)."""

    status, slug, title = 502, "fhir-server-error", "FHIR server error"

    @classmethod
    def of(cls, exc: Exception, doing: str) -> BadGateway:
        """The 502 for ``exc`` met while ``doing``, with the server's reason as the client put it
        (its first line, bounded): a caller told only an error class cannot tell a refused token
        from a server that is down."""
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        return cls(f"the FHIR server failed during {doing}: {reason}")


class Unavailable(Problem):
    """The store (or another dependency) is unreachable right now (503)."""

    status, slug, title = 503, "unavailable", "Service unavailable"


def _location_and_field(loc: Sequence[Any], hint: str | None) -> tuple[str, str]:
    parts = [str(p) for p in loc]
    location = "body"
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        location, parts = parts[0], parts[1:]
    # Pydantic adds the tagged-union member or function name into locations; keep the data path.
    parts = [p for p in parts if not p.startswith(("function-", "json-or-python["))]
    field = ".".join(parts) or hint or location
    return location, field


def field_errors(errors: Sequence[Mapping[str, Any]], *, hint: str | None = None) -> list[FieldError]:
    """Pydantic/FastAPI error dicts as field errors, without the rejected input values."""
    out = []
    for err in errors:
        location, field = _location_and_field(err.get("loc", ()), hint)
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error")
            field, message = "body", f"not valid JSON{': ' + str(reason) if reason else ''}"
        out.append(FieldError(field=field, location=location, message=message))
    return out


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _body(
    status: int,
    problem_type: str,
    title: str,
    detail: str | None,
    errors: Sequence[FieldError],
    request: Request,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "errors": [e.model_dump() for e in errors],
        "request_id": _request_id(request),
    }
    body.update(extra)
    return body


#: A calendar date or instant in a message (a rule of the domain saying which dates clash): dates of
#: a patient's care are personal data, so the answer names the rule and leaves the dates out.
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?\b")


def _undated(text: str | None) -> str | None:
    return _DATE.sub("<date>", text) if text else text


def _operation_outcome(status: int, title: str, detail: str | None, errors: Sequence[FieldError]) -> dict[str, Any]:
    code = {
        401: "login",
        403: "forbidden",
        404: "not-found",
        405: "not-supported",
        409: "conflict",
        412: "conflict",
        413: "too-costly",
        422: "invalid",
        400: "invalid",
        501: "not-supported",
    }.get(status, "exception")
    issues = [
        {"severity": "error", "code": code, "diagnostics": f"{e.field}: {e.message}", "expression": [e.field]}
        for e in errors
    ] or [{"severity": "error", "code": code, "diagnostics": detail or title}]
    return {"resourceType": "OperationOutcome", "issue": issues}


def problem_response(
    request: Request,
    status: int,
    *,
    slug: str,
    title: str,
    detail: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """The error response for ``request``: problem+json, or an OperationOutcome under ``/fhir``."""
    all_headers = dict(headers or {})
    if request_id := _request_id(request):
        all_headers.setdefault("X-Request-Id", request_id)
    detail = _undated(detail)
    errors = [e.model_copy(update={"message": _undated(e.message)}) for e in errors]
    if request.url.path == "/fhir" or request.url.path.startswith("/fhir/"):
        content, media = _operation_outcome(status, title, detail, errors), FHIR_JSON
    else:
        content, media = _body(status, _TYPE + slug, title, detail, errors, request, extra or {}), PROBLEM_JSON
    return Response(decimals.dumps(content), status_code=status, media_type=media, headers=all_headers)


def _from_problem(request: Request, exc: Problem) -> Response:
    return problem_response(
        request,
        exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return _from_problem(request, exc)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return _from_problem(request, InvalidInput("the request has invalid fields; see errors", errors=errors))


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    phrase = http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else "Error"
    slug = phrase.lower().replace(" ", "-")
    # Starlette's own details ("Not Found", body parse errors) carry no client data.
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if status == 405:
        # Starlette names only the methods of the first route whose path matched; a path served by
        # several routes (GET and POST /cases) allows all of theirs.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request))) or headers.get("Allow", "")
    return problem_response(request, status, slug=slug, title=phrase, detail=detail, headers=headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> set[str]:
    """The methods some route serves at this path: each asked of the router as a request would be."""
    allowed: set[str] = set()
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.add(method)
    return allowed


async def _on_store(request: Request, exc: Exception) -> Response:
    if isinstance(exc, StoreUnavailable):
        return _from_problem(
            request, Unavailable("the store is unavailable or busy; try again", headers={"Retry-After": "1"})
        )
    if isinstance(exc, NotFound):
        return _from_problem(request, NotFoundProblem(str(exc)))
    if isinstance(exc, UnreadableCase):  # routes that judge access turn it into a 404 first (``_casework``)
        return _from_problem(request, UnreadableProblem(str(exc)))
    if isinstance(exc, StaleRevision):
        return _from_problem(request, ConflictProblem("the case changed while this request ran; try again"))
    log.error("store error", extra={"fields": {"error": type(exc).__name__}})
    return problem_response(
        request, 500, slug="store-error", title="Store error", detail="the store refused the operation"
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # The message may hold data from the request: log the type only.
    log.error("unhandled error", extra={"fields": {"error": type(exc).__name__}})
    return problem_response(
        request,
        500,
        slug="internal-error",
        title="Internal error",
        detail="an unexpected error occurred; the request id identifies it in the logs",
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error of ``app`` through the problem (or OperationOutcome) renderer."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(StoreError, _on_store)
    app.add_exception_handler(Exception, _on_unexpected)
