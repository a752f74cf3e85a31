"""What can go wrong moving files in and out of the store."""

from __future__ import annotations

from ..errors import FhirCmError

__all__ = ["BadInputError", "InterchangeError", "UnknownCaseError"]


class InterchangeError(FhirCmError):
    """Base of the import/export errors. Messages name files, positions and elements, never values."""


class BadInputError(InterchangeError, ValueError):
    """A file (or a line, item or Bundle entry in it) is not JSON, not FHIR R4/R5, nor a case."""

    def __init__(self, file: str, position: str | None, reason: str) -> None:
        self.file, self.position, self.reason = file, position, reason
        super().__init__(f"{file}: {position}: {reason}" if position else f"{file}: {reason}")


class UnknownCaseError(InterchangeError, LookupError):
    """``export --case ID`` named a case the store does not hold."""
