"""The root of fhir-cm's own exceptions, at the bottom of the layers: every layer may import it.

Each layer keeps its own hierarchy (``FhirError``, ``StoreError``, ``MappingError``,
``InterchangeError``, …) beneath this root, so a caller at the top — the command line — can tell
"fhir-cm refused or failed, with a reason meant for people" from a bug with one ``except``.
Messages of every subclass name files, types, elements and ids, never case data.
"""

from __future__ import annotations

__all__ = ["FhirCmError"]


class FhirCmError(Exception):
    """Base of every exception fhir-cm defines."""
