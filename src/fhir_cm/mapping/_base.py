"""What every mapping module shares: FHIR versions, resource keys, errors."""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = [
    "FhirVersion",
    "MappingError",
    "ResourceKey",
    "UnreadableResourceError",
    "UnsupportedVersionError",
    "check_version",
]

FhirVersion = Literal["R4", "R5"]


class MappingError(Exception):
    """Base of the mapping errors. Messages name resource types and elements, never their values."""


class UnsupportedVersionError(MappingError, ValueError):
    """A FHIR version other than R4 or R5 was asked for."""


class UnreadableResourceError(MappingError):
    """A resource (or a set of resources) lacks what a case needs, or says something a case cannot hold."""


class ResourceKey(NamedTuple):
    """A resource the adapter owns, by type and business-identifier value (the domain id)."""

    type: str
    value: str


def check_version(version: str) -> FhirVersion:
    """``"R4"`` or ``"R5"`` (also accepts ``"r4"``, ``"R4B"``, ``"4.0.1"``, ``"5.0.0"``)."""
    v = str(version).strip().upper()
    if v in ("R4", "R4B") or v.startswith("4."):
        return "R4"
    if v == "R5" or v.startswith("5."):
        return "R5"
    raise UnsupportedVersionError(f"unsupported FHIR version {version!r}: use R4 or R5")
