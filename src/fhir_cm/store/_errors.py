"""The store's exceptions: one root, grouped by what the caller can do about them.

Messages name tables and revisions, never the content of a row: rows hold case data (names,
identifiers, notes), and exception messages end up in logs and on the command line.
"""

from __future__ import annotations

from ..errors import FhirCmError

__all__ = ["LeaseLost", "NotFound", "SchemaMismatch", "StaleRevision", "StoreError", "StoreUnavailable"]


class StoreError(FhirCmError):
    """Something went wrong in the store; the base of every store exception."""


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached, or stayed locked longer than the busy timeout."""


class SchemaMismatch(StoreError):
    """The database's schema is at a revision this version of fhir-cm does not know (newer code wrote it)."""


class NotFound(StoreError, LookupError):
    """A row the caller named (a case, a conflict) does not exist."""


class StaleRevision(StoreError):
    """A case was saved against a revision that is no longer the latest: someone else changed it first."""


class LeaseLost(StoreError):
    """An outbox claim is no longer held by the caller (its lease expired and another worker took it)."""
