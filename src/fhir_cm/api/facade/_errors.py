"""What the FHIR facade answers when it cannot answer with a resource: an OperationOutcome.

Every failure under ``/fhir`` — a bad parameter, an unknown type or id, a version the client wants
that we do not speak, a refused credential — is one of these exceptions, raised where it is found
and rendered once, at the router's edge. Diagnostics name parameters and resource types, never the
values a resource holds (those may be personal data), so they are safe to log as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from ...errors import FhirCmError

__all__ = [
    "FacadeError",
    "InvalidSearch",
    "MethodNotAllowed",
    "NotAcceptable",
    "FacadeNotFound",
    "UnknownResourceType",
    "UnsupportedMediaType",
    "UnsupportedParameter",
    "issue",
    "issue_code_for_status",
    "operation_outcome",
]


class FacadeError(FhirCmError):
    """A request the facade answers with an OperationOutcome and ``status`` instead of a resource."""

    status: int = 400
    code: str = "invalid"

    def __init__(self, diagnostics: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.headers = dict(headers or {})

    def outcome(self) -> dict[str, Any]:
        """The OperationOutcome this error is shown as."""
        return operation_outcome([issue("error", self.code, self.diagnostics)])


class InvalidSearch(FacadeError):
    """A search or read parameter whose value cannot be understood (a date that is not one, ``_count=-1``)."""


class UnsupportedParameter(FacadeError):
    """A parameter the facade does not know (unless ``Prefer: handling=lenient``), or a modifier it does not support."""

    code = "not-supported"


class FacadeNotFound(FacadeError):
    """No resource of that type has that id."""

    status = 404
    code = "not-found"


class UnknownResourceType(FacadeError):
    """A resource type the facade does not serve (or no resource type at all)."""

    status = 404
    code = "not-supported"


class MethodNotAllowed(FacadeError):
    """A write (or any method but GET) on the read-only facade."""

    status = 405
    code = "not-supported"


class NotAcceptable(FacadeError):
    """The client accepts only a FHIR version or format the facade cannot produce."""

    status = 406
    code = "not-supported"


class UnsupportedMediaType(FacadeError):
    """A request body in a media type the facade does not read (``POST _search`` takes a form)."""

    status = 415
    code = "not-supported"


def issue(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    """One OperationOutcome.issue."""
    return {"severity": severity, "code": code, "diagnostics": diagnostics}


def operation_outcome(issues: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome with these issues (at least one is needed: FHIR requires ``issue`` 1..*)."""
    listed = [dict(i) for i in issues]
    if not listed:
        raise ValueError("an OperationOutcome needs at least one issue")
    return {"resourceType": "OperationOutcome", "issue": listed}


#: The OperationOutcome issue code (IssueType) that best says what an HTTP error status means.
_ISSUE_CODES = {
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    413: "too-costly",
    429: "throttled",
    503: "transient",
}


def issue_code_for_status(status: int) -> str:
    """The IssueType for an error raised outside the facade (by the auth dependency, by the framework)."""
    if status in _ISSUE_CODES:
        return _ISSUE_CODES[status]
    return "exception" if status >= 500 else "invalid"
