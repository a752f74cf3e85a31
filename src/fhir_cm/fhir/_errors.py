"""One exception hierarchy for everything a FHIR server (or the network to it) can do wrong.

Lower-layer failures are translated once, at the client's send boundary: an HTTP error status
through :func:`error_from_response` (a status → class table plus the few rules HAPI makes
necessary), a transport failure through :func:`map_transport_errors`. Nothing else in the package
raises ``httpx`` errors at the caller.

Messages never carry PHI: they name the method, resource type and id, the status, the
OperationOutcome issue codes and the server's diagnostics with query values redacted and cut short.
Request bodies and query strings (``identifier=…`` is often an MRN) are never part of a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ._network import network_summary
from ._urls import relative_path
from ..errors import FhirCmError

__all__ = [
    "AmbiguousMatch",
    "Conflict",
    "FhirError",
    "Forbidden",
    "InvalidRequest",
    "InvalidResource",
    "InvalidResponse",
    "PageLimitExceeded",
    "PagingError",
    "PayloadTooLarge",
    "RequestInfo",
    "ResourceGone",
    "ResourceNotFound",
    "TransientError",
    "Unauthorized",
    "UnsafeLink",
    "UnsupportedByServer",
    "VersionConflict",
    "error_from_outcome",
    "error_from_response",
    "map_transport_errors",
    "redirected",
]

MAX_DIAGNOSTICS = 200
_HAPI_CODE = re.compile(r"\bHAPI-(\d{4})\b")
# name=value pairs in diagnostics ("match URL \"Patient?identifier=123\"", older HAPI: "identifier=123").
_QUERY_VALUE = re.compile(r"(?<![A-Za-z0-9_\-:.])([A-Za-z_][A-Za-z0-9_\-:.]*=)[^&\s\"'<>,;]+")
# HAPI codes for "the conditional criteria matched more than one resource" on CREATE (0958), DELETE
# (0962), PATCH (0972) and UPDATE (0988); older HAPI sends the same text without a code.
_MULTIPLE_MATCH_CODES = frozenset({"HAPI-0958", "HAPI-0962", "HAPI-0972", "HAPI-0988"})
_MULTIPLE_MATCH_TEXT = "because this search matched"
# HAPI answers 409 (its ResourceVersionConflictException) for three kinds of thing, told apart by its
# message code. A stale version: an update (0989) or patch (0974) whose If-Match is no longer
# current. A write that lost a race with a concurrent one on the same resource or id (0823, 0825,
# 0826, 0827: "version constraint failure"), which may succeed when sent again. And a refusal that
# has nothing to do with versions: a unique index clash (1093, 2883; 0824 at the database) or a
# delete blocked by references (0515), which sending again cannot change.
_HAPI_STALE_CODES = frozenset({"HAPI-0974", "HAPI-0989"})
_HAPI_RACE_CODES = frozenset({"HAPI-0823", "HAPI-0825", "HAPI-0826", "HAPI-0827"})
_HAPI_REFUSAL_CODES = frozenset({"HAPI-0515", "HAPI-0824", "HAPI-1093", "HAPI-2883"})
# OperationOutcome issue codes that say what a 409 is when no message code does: the data refused
# (a duplicate, a business rule), or a busy server (a lock, a timeout).
_REFUSAL_ISSUES = frozenset({"duplicate", "business-rule", "invariant", "not-allowed"})
_TRANSIENT_ISSUES = frozenset({"transient", "lock-error", "timeout", "throttled"})
# A bundle refused for its number of entries (answered 400/422 by some servers, 413 by others):
# Medplum "Transaction requires strict isolation but has too many entries" / "… more update operations
# than allowed", HAPI-0528 "Transaction Bundle Too large …", and the like.
BUNDLE_TOO_LARGE = re.compile(
    r"too many (?:bundle )?(?:entries|resources|operations)|more \w* ?operations than allowed"
    r"|bundle (?:is )?too large|exceed\w* the maxim\w*|(?:number of )?entries exceed",
    re.IGNORECASE,
)
# A server that declares transactions yet refuses them.
TRANSACTION_REFUSED = re.compile(
    r"transactions? (?:bundles? )?(?:are |is )?not (?:supported|allowed|enabled)|does not support transactions?",
    re.IGNORECASE,
)


class FhirError(FhirCmError):
    """Base of every error raised by ``fhir_cm.fhir``."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        issue_codes: tuple[str, ...] = (),
        diagnostics: str | None = None,
        hapi_codes: tuple[str, ...] = (),
        resource_type: str | None = None,
        resource_id: str | None = None,
        retry_after: float | None = None,
        outcome: Mapping[str, Any] | None = None,
        summary: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.issue_codes = issue_codes
        self.diagnostics = diagnostics
        self.hapi_codes = hapi_codes
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.retry_after = retry_after
        # The raw OperationOutcome, for a caller that decides to log it; never part of str(self).
        self.outcome = outcome
        # What went wrong when no server status says it (the network, a malformed answer), in one
        # line for a person: no resource id, no data of ours, no credentials (see ``_network``).
        self.summary = summary

    def said(self) -> str:
        """The message's first line, and for a request no HTTP status answered what happened, with
        which host: "network error (ConnectError)" alone hid a refused port, a name that does not
        resolve and an untrusted certificate alike."""
        text = str(self)
        line = text.splitlines()[0] if text.strip() else type(self).__name__
        if self.status is None and self.summary and self.summary not in line:
            line = f"{line}: {self.summary}"
        return line

    @property
    def hapi_code(self) -> str | None:
        """The most specific HAPI message code (``HAPI-0550: HAPI-0989: …`` → ``HAPI-0989``)."""
        return self.hapi_codes[-1] if self.hapi_codes else None


class ResourceNotFound(FhirError):
    """404: the resource (or type, or operation) is not known to the server."""


class ResourceGone(ResourceNotFound):
    """410: the resource existed and was deleted."""


class Conflict(FhirError):
    """409 that is not about versions: the request conflicts with what the server holds (a unique
    index clash, a duplicate id, a delete blocked by references); sending it again changes nothing."""


class VersionConflict(Conflict):
    """409 or 412 on a versioned write (``If-Match``): someone else changed the resource since we read it."""


class AmbiguousMatch(FhirError):
    """412 on a conditional request (HAPI-0958 …): the criteria matched more than one resource."""


class InvalidRequest(FhirError):
    """400/422: the server refused the request as malformed (e.g. an unknown search parameter)."""


class InvalidResource(InvalidRequest):
    """400/422 on a write: the resource sent failed the server's validation."""


class Unauthorized(FhirError):
    """401: no or invalid credentials, or the token endpoint refused the client."""


class Forbidden(FhirError):
    """403: authenticated, but not allowed (scopes, consent, access policy)."""


class PayloadTooLarge(FhirError):
    """413, or a bundle refused for its number of entries: larger than the server accepts."""


class TransientError(FhirError):
    """429, 5xx, a network failure, or a 409 for a write that lost a race with a concurrent one
    (HAPI's "version constraint failure"): the same request may succeed later."""


class UnsupportedByServer(FhirError):
    """The server does not support the interaction, type, parameter or bundle kind asked for."""


class InvalidResponse(FhirError):
    """The server answered with something that is not the FHIR JSON the interaction calls for."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("summary", "the server's answer was not the FHIR JSON asked for")
        super().__init__(message, **kwargs)


class PagingError(FhirError):
    """A search's paging links cannot be followed safely."""


class UnsafeLink(PagingError):
    """A next link points to another origin (scheme, host or port) than the FHIR base, or loops."""


class PageLimitExceeded(PagingError):
    """The search has more pages than the configured cap; results so far were delivered."""


_STATUS_TABLE: dict[int, type[FhirError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: ResourceNotFound,
    405: UnsupportedByServer,
    409: Conflict,
    410: ResourceGone,
    412: VersionConflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: TransientError,
    501: UnsupportedByServer,
}

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class RequestInfo:
    """What the error rules need to know about the request that failed (no body, no query)."""

    method: str
    resource_type: str | None = None
    resource_id: str | None = None
    if_match: bool = False
    conditional: bool = False
    endpoint: str | None = None  # a non-type first segment: "metadata", "_history", "$export"

    @classmethod
    def from_request(cls, request: httpx.Request, base_url: str) -> RequestInfo:
        """Describe an ``httpx.Request`` to ``base_url`` (type and id come from the path)."""
        segments = relative_path(base_url, request.url)
        method = request.method.upper()
        conditional = bool(request.headers.get("if-none-exist")) or (
            method in {"PUT", "PATCH", "DELETE"} and len(segments) == 1 and bool(request.url.query)
        )
        typed = bool(segments) and segments[0][:1].isupper()
        return cls(
            method=method,
            resource_type=segments[0] if typed else None,
            resource_id=segments[1] if len(segments) > 1 and not segments[1].startswith(("_", "$")) else None,
            if_match=bool(request.headers.get("if-match")),
            conditional=conditional,
            endpoint=segments[0] if segments and not typed else None,
        )

    @property
    def is_bundle(self) -> bool:
        """A transaction or batch: a POST to the base."""
        return self.method == "POST" and self.resource_type is None and self.endpoint is None

    def describe(self) -> str:
        """``PUT CarePlan/123`` — the only request detail that may appear in a message."""
        target = "/".join(p for p in (self.resource_type, self.resource_id) if p) or self.endpoint
        return f"{self.method} {target or '[base]'}"


def redact(text: str, limit: int = MAX_DIAGNOSTICS) -> str:
    """Drop query values (identifiers, names) from a server message and cut it to ``limit``."""
    cleaned = _QUERY_VALUE.sub(r"\1…", " ".join(text.split()))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _outcome_parts(outcome: Mapping[str, Any] | None) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """Issue codes, joined diagnostics and HAPI message codes of an OperationOutcome."""
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return (), None, ()
    codes: list[str] = []
    texts: list[str] = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, Mapping):
            continue
        if isinstance(issue.get("code"), str):
            codes.append(issue["code"])
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
    diagnostics = "; ".join(texts) or None
    hapi = tuple(f"HAPI-{n}" for n in _HAPI_CODE.findall(diagnostics or ""))
    return tuple(codes), diagnostics, hapi


def _classify(
    status: int, info: RequestInfo, issue_codes: tuple[str, ...], diagnostics: str, hapi: tuple[str, ...]
) -> type[FhirError]:
    """The rules a bare status table cannot express, in the order they must be tried."""
    if status == 412:
        if set(hapi) & _HAPI_REFUSAL_CODES:  # HAPI before 6 answered a unique index clash with 412
            return Conflict
        multiple = set(hapi) & _MULTIPLE_MATCH_CODES or _MULTIPLE_MATCH_TEXT in diagnostics
        if multiple or "multiple-matches" in issue_codes:
            return AmbiguousMatch
        if info.if_match:
            return VersionConflict
        return AmbiguousMatch if info.conditional else VersionConflict
    if status == 409:
        return _conflict_kind(info, issue_codes, hapi)
    if status in (400, 422):
        if "not-supported" in issue_codes:
            return UnsupportedByServer
        if info.is_bundle:
            if BUNDLE_TOO_LARGE.search(diagnostics):
                return PayloadTooLarge
            if TRANSACTION_REFUSED.search(diagnostics):
                return UnsupportedByServer
        if info.method in _WRITE_METHODS and info.resource_type is not None:
            return InvalidResource
    if status in _STATUS_TABLE:
        return _STATUS_TABLE[status]
    return TransientError if status >= 500 else FhirError


def _conflict_kind(info: RequestInfo, issue_codes: tuple[str, ...], hapi: tuple[str, ...]) -> type[FhirError]:
    """What a 409 is. The FHIR specification answers 409 (or 412) to a write whose ``If-Match`` is
    stale, but servers answer 409 to other conflicts too: without an ``If-Match`` there is no
    version to be stale (HAPI's own message code may still say it is one), and a 409 taken for a
    version conflict had the push re-read and merge, find nothing to merge and send the same again,
    round after round, never telling the server's reason."""
    codes, issues = set(hapi), set(issue_codes)
    if info.method == "DELETE" or codes & _HAPI_REFUSAL_CODES:
        return Conflict
    if codes & _HAPI_STALE_CODES:
        return VersionConflict
    if codes & _HAPI_RACE_CODES or issues & _TRANSIENT_ISSUES:
        return TransientError
    if issues & _REFUSAL_ISSUES:
        return Conflict
    return VersionConflict if info.if_match else Conflict


def _bundle_preconditions(request: httpx.Request, info: RequestInfo) -> RequestInfo:
    """A transaction or batch as the error rules see it: with an ``If-Match`` if one of its entries
    carried one, conditional if one was (the bundle's own request has neither header)."""
    try:
        bundle = orjson.loads(request.content)
        requests = [e.get("request") or {} for e in bundle.get("entry") or [] if isinstance(e, dict)]
    except (orjson.JSONDecodeError, AttributeError, TypeError, httpx.RequestNotRead):
        return info
    if_match = any(isinstance(r, dict) and r.get("ifMatch") for r in requests)
    conditional = any(isinstance(r, dict) and (r.get("ifNoneExist") or "?" in str(r.get("url", ""))) for r in requests)
    return RequestInfo(info.method, if_match=if_match, conditional=conditional)


def error_from_outcome(
    status: int,
    outcome: Mapping[str, Any] | None,
    info: RequestInfo,
    *,
    retry_after: float | None = None,
    hint: str | None = None,
) -> FhirError:
    """Build the exception for an error ``status`` with an optional OperationOutcome body (``hint``:
    what the caller knows of the cause, said after the server's words)."""
    issue_codes, diagnostics, hapi = _outcome_parts(outcome)
    cls = _classify(status, info, issue_codes, diagnostics or "", hapi)
    message = f"{info.describe()} → {status} {cls.__name__}"
    if issue_codes:
        message += f" [{', '.join(issue_codes)}]"
    if diagnostics:
        message += f": {redact(diagnostics)}"
    if hint:
        message += f"; {hint}"
    return cls(
        message,
        status=status,
        issue_codes=issue_codes,
        diagnostics=redact(diagnostics) if diagnostics else None,
        hapi_codes=hapi,
        resource_type=info.resource_type,
        resource_id=info.resource_id,
        retry_after=retry_after,
        outcome=outcome,
    )


def error_from_response(response: httpx.Response, base_url: str, *, retry_after: float | None = None) -> FhirError:
    """Translate an HTTP error response (status ≥ 400, body already read) into a ``FhirError``."""
    outcome: Any = None
    try:
        outcome = response.json() if response.content else None
    except ValueError:  # an HTML page from a proxy, for instance
        outcome = None
    info = RequestInfo.from_request(response.request, base_url)
    if response.status_code in (409, 412) and info.is_bundle:
        info = _bundle_preconditions(response.request, info)
    hint = None
    if response.status_code == 404 and info.resource_id is None and not _is_outcome(outcome):
        # No such endpoint at all, said by a web server rather than a FHIR one: most often a base
        # missing the server's FHIR path (HAPI's /fhir), which read as a bare "404 ResourceNotFound".
        hint = f"no FHIR server answers at {base_url}: is it the server's FHIR base (often ending in /fhir)?"
    return error_from_outcome(response.status_code, outcome, info, retry_after=retry_after, hint=hint)


def _is_outcome(body: Any) -> bool:
    return isinstance(body, Mapping) and body.get("resourceType") == "OperationOutcome"


def redirected(response: httpx.Response, info: RequestInfo) -> InvalidResponse:
    """A 3xx answer, which the client does not follow: the request, body and credentials included,
    would go wherever the server (or a proxy in front of it) names. Taken as an answer, a 308 to a
    PUT read as an update done while nothing was written, and every other request failed as "no
    resource" or "not a Bundle". Named as what it is, with where it points (no query: it may carry
    an identifier), a moved base (``http`` → ``https``, a new path) is a setting to correct."""
    status = response.status_code
    target = response.headers.get("location", "").strip()
    try:
        url = response.request.url.join(target) if target else None
        where = f"{url.scheme}://{url.host}{f':{url.port}' if url.port else ''}{url.path}" if url else ""
    except (httpx.InvalidURL, ValueError):
        where = ""
    told = f"a redirect to {where}" if where else "a redirect"
    return InvalidResponse(
        f"{info.describe()} → {status} {told}, not followed: set the FHIR base to the address the server answers at",
        status=status,
        resource_type=info.resource_type,
        resource_id=info.resource_id,
    )


@contextmanager
def map_transport_errors(info: RequestInfo, request: httpx.Request | None = None) -> Iterator[None]:
    """Turn ``httpx`` transport failures into ``TransientError`` (the message names only the class;
    its ``summary`` what happened, with ``request``'s host), and a body that does not decode into
    ``InvalidResponse``."""
    try:
        yield
    except httpx.DecodingError:  # a Content-Encoding the body does not decode by: sending again will not help
        raise InvalidResponse(
            f"{info.describe()} → a body that does not decode as its Content-Encoding says",
            resource_type=info.resource_type,
            resource_id=info.resource_id,
            summary="the server's answer did not decode as its Content-Encoding says",
        ) from None
    except httpx.TransportError as exc:  # timeouts, connection and protocol errors
        raise TransientError(
            f"{info.describe()} → network error ({type(exc).__name__}){_where(exc)}",
            resource_type=info.resource_type,
            resource_id=info.resource_id,
            summary=network_summary(exc, request),
        ) from exc


#: ``httpx.Request.extensions`` key naming what a request sent on the way to another one is for (the
#: SMART token endpoint), so that its network error does not read as the FHIR request's own.
PURPOSE = "fhir_cm.purpose"


def _where(exc: httpx.TransportError) -> str:
    try:
        purpose = exc.request.extensions.get(PURPOSE)
    except RuntimeError:  # raised without a request
        return ""
    return f" {purpose}" if isinstance(purpose, str) else ""
