"""What every mapping module shares: FHIR versions, resource keys, errors."""

from __future__ import annotations

from typing import Literal, NamedTuple
from ..errors import FhirCmError

__all__ = [
    "AUTO_FHIR_VERSION",
    "DEFAULT_FHIR_VERSION",
    "FhirVersion",
    "MappingError",
    "ResourceKey",
    "UnreadableResourceError",
    "UnsupportedVersionError",
    "check_version",
    "explicit_fhir_version",
    "fhir_version_without_server",
]

FhirVersion = Literal["R4", "R5"]


class MappingError(FhirCmError):
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


# -- the one "auto" rule ---------------------------------------------------------------------------
# A version asked for explicitly wins; ``auto`` (the default of ``FHIR_CM_FHIR_VERSION``) means the
# release the server's /metadata declares (``fhir_cm.sync.server_fhir_version``) and, without a
# server (map, import, export), R4.

#: The setting (or option) that leaves the version to the server.
AUTO_FHIR_VERSION = "auto"
#: The version of work without a server when none is asked for.
DEFAULT_FHIR_VERSION: FhirVersion = "R4"


def explicit_fhir_version(*asked: str | None) -> FhirVersion | None:
    """The first version asked for that is not ``auto`` (checked: R4 or R5), else None."""
    for version in asked:
        if version is not None and version != AUTO_FHIR_VERSION:
            return check_version(version)
    return None


def fhir_version_without_server(*asked: str | None) -> FhirVersion:
    """The version of work without a server: the first asked for that is not ``auto``, else R4."""
    return explicit_fhir_version(*asked) or DEFAULT_FHIR_VERSION
