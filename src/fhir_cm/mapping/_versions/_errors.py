"""What can go wrong converting a resource between FHIR versions.

Messages name resource types and element paths, never element values: the values are case data.
"""

from __future__ import annotations

from ...errors import FhirCmError

__all__ = ["UnrepresentableElementError", "UnsupportedResourceError", "VersionConversionError"]


class VersionConversionError(FhirCmError, ValueError):
    """A resource cannot be converted between FHIR R4 and R5; the base of the converter's exceptions."""


class UnsupportedResourceError(VersionConversionError):
    """The resource (or one it contains) has no ``resourceType`` or a type the target version lacks."""


class UnrepresentableElementError(VersionConversionError):
    """An element has no home in the target version and cannot travel in an extension either
    (a resource-typed element such as R5 ``Bundle.issues``, or one on an element without extensions)."""
