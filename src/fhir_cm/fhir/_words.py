"""How resource types read in the lines people are shown."""

from __future__ import annotations

__all__ = ["a_resource"]


def a_resource(resource_type: object) -> str:
    """``an Encounter``, ``a Goal``: a resource type with its article ("a Encounter" reads as a slip).
    Every FHIR type that starts with a vowel is said with "an" (EpisodeOfCare, Organization, Observation)."""
    name = str(resource_type or "resource")
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"
