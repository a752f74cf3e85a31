"""What a write (or one bundle entry) did: status, identity, version and the resource.

The same shape serves a single ``create``/``update`` and every entry of a transaction or batch, so
the sync layer records outcomes one way however they were sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from ._errors import FhirError
from ._urls import parse_etag_version, parse_location

__all__ = ["BundleResult", "WriteResult"]


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one write: ``status`` is None for a bundle entry that was never attempted."""

    status: int | None
    resource_type: str | None = None
    id: str | None = None
    version_id: str | None = None
    etag: str | None = None
    location: str | None = None
    last_modified: str | None = None
    resource: dict[str, Any] | None = field(default=None, repr=False)
    outcome: dict[str, Any] | None = field(default=None, repr=False)
    error: FhirError | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400 and self.error is None

    @property
    def created(self) -> bool:
        """True when the server made a new resource (201), False when it matched or updated one."""
        return self.status == 201

    @classmethod
    def build(
        cls,
        status: int | None,
        *,
        location: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        body: Any = None,
        error: FhirError | None = None,
    ) -> WriteResult:
        """Combine what Location, ETag and the body say; Location wins, then ETag, then ``meta``."""
        resource = (
            body if isinstance(body, dict) and body.get("resourceType") not in (None, "OperationOutcome") else None
        )
        outcome = body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None
        loc = parse_location(location)
        meta = (resource or {}).get("meta") or {}
        return cls(
            status=status,
            resource_type=(loc.resource_type if loc else None) or (resource or {}).get("resourceType"),
            id=(loc.id if loc else None) or (resource or {}).get("id"),
            version_id=(loc.version_id if loc else None) or parse_etag_version(etag) or meta.get("versionId"),
            etag=etag,
            location=location,
            last_modified=last_modified or meta.get("lastUpdated"),
            resource=resource,
            outcome=outcome,
            error=error,
        )

    @classmethod
    def from_response(cls, response: httpx.Response, body: Any) -> WriteResult:
        headers = response.headers
        return cls.build(
            response.status_code,
            location=headers.get("location") or headers.get("content-location"),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            body=body,
        )

    @classmethod
    def from_bundle_entry(cls, entry: Mapping[str, Any], error: FhirError | None = None) -> WriteResult:
        """Read a transaction-/batch-response entry (``response.status`` is text: ``"201 Created"``)."""
        response = entry.get("response") or {}
        status_text = str(response.get("status") or "").strip()
        head = status_text.split(" ", 1)[0]
        result = cls.build(
            int(head) if head.isdigit() else None,
            location=_text(response.get("location")),
            etag=_text(response.get("etag")),
            last_modified=_text(response.get("lastModified")),
            body=entry.get("resource") or response.get("outcome"),
            error=error,
        )
        outcome = response.get("outcome")
        if result.outcome is None and isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome":
            # Beside the resource written, what the server said of it (its warnings) is kept too.
            result = replace(result, outcome=outcome)
        return result

    def with_resource(self, resource: dict[str, Any]) -> WriteResult:
        """This result completed with a resource read back (after an empty-bodied answer)."""
        meta = resource.get("meta") or {}
        return replace(
            self,
            resource=resource,
            resource_type=self.resource_type or resource.get("resourceType"),
            id=self.id or resource.get("id"),
            version_id=self.version_id or meta.get("versionId"),
            last_modified=self.last_modified or meta.get("lastUpdated"),
        )


def _text(value: Any) -> str | None:
    """A string element of an entry's ``response``, else None: a server's number or object in its
    place (no FHIR server should send one) is no location, and must not fail the whole bundle."""
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class BundleResult:
    """Per-entry results, in the order the entries were given, and how they were finally sent.

    ``mode`` is ``transaction`` (atomic), ``split-transaction`` (several smaller transactions: each
    atomic, the whole not), ``batch`` or ``single`` (one request per entry).
    """

    kind: str
    mode: str
    entries: list[WriteResult]

    @property
    def ok(self) -> bool:
        return all(entry.ok for entry in self.entries)

    @property
    def atomic(self) -> bool:
        return self.mode == "transaction"

    @property
    def failed(self) -> list[WriteResult]:
        return [entry for entry in self.entries if not entry.ok]
