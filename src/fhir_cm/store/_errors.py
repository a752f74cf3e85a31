"""The store's exceptions: one root, grouped by what the caller can do about them.

Messages name tables and revisions, never the content of a row: rows hold case data (names,
identifiers, notes), and exception messages end up in logs and on the command line.
"""

from __future__ import annotations

from ..errors import FhirCmError

__all__ = [
    "LeaseLost",
    "NotFound",
    "SchemaMismatch",
    "StaleRevision",
    "StoreError",
    "StoreUnavailable",
    "UnreadableCase",
]


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


class UnreadableCase(StoreError):
    """A stored case this version's case model refuses: stored before a rule of the model (an id it
    now refuses, a field made stricter). It is kept as stored — never dropped, never overwritten — and
    listed by ``fhir-cm check``; whoever needs that very case gets this error, lists leave it out.

    ``fields`` name where the model fails (no values: they are the case's data). ``programme`` and
    ``case_manager_id`` are the row's own columns, so access to it can still be judged.
    """

    def __init__(
        self, case_id: str, fields: list[str], *, programme: str | None = None, case_manager_id: str | None = None
    ) -> None:
        self.case_id, self.fields = case_id, fields
        self.programme, self.case_manager_id = programme, case_manager_id
        where = ", ".join(fields) or "the case"
        super().__init__(
            f"stored case {case_id} cannot be read by this version of fhir-cm ({where} breaks a rule of the "
            "case model, stored before it); it is kept as stored: `fhir-cm check` lists it"
        )
