"""The official HL7 examples in ``fixtures/hl7/`` (see its README), one test parameter per file.

``pytest.mark.parametrize("example", example_params())`` gives every example its own test id
(``r4/Encounter-emerg``), so a failure names the file to open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

__all__ = [
    "CASE_MANAGEMENT_TYPES",
    "FIXTURES",
    "WORKFLOW_TYPES",
    "Hl7Example",
    "example_params",
    "hl7_examples",
]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7"

#: The seven resource types of a case (issue 2 asks for every official example of these).
CASE_MANAGEMENT_TYPES = ("EpisodeOfCare", "CarePlan", "Goal", "ServiceRequest", "CareTeam", "Condition", "Encounter")
#: Referral tasks and monitoring contacts, also exchanged by fhir-cm.
WORKFLOW_TYPES = ("Task", "Communication")

Version = Literal["R4", "R5"]


@dataclass(frozen=True)
class Hl7Example:
    """One example file: ``fixtures/hl7/<r4|r5>/<Type>-<id>.json``."""

    version: Version
    path: Path

    @property
    def resource_type(self) -> str:
        return self.path.name.split("-", 1)[0]

    @property
    def other_version(self) -> Version:
        return "R5" if self.version == "R4" else "R4"

    @property
    def test_id(self) -> str:
        return f"{self.version.lower()}/{self.path.stem}"

    def load(self) -> dict[str, Any]:
        """A fresh copy of the resource, parsed from the file's bytes."""
        return json.loads(self.path.read_bytes())


def hl7_examples(
    versions: tuple[Version, ...] = ("R4", "R5"),
    types: tuple[str, ...] = CASE_MANAGEMENT_TYPES + WORKFLOW_TYPES,
) -> list[Hl7Example]:
    """The example files of the given versions and resource types, in a stable order."""
    found = [
        Hl7Example(version, path)
        for version in versions
        for path in sorted((FIXTURES / version.lower()).glob("*.json"))
    ]
    return [example for example in found if example.resource_type in types]


def example_params(
    versions: tuple[Version, ...] = ("R4", "R5"),
    types: tuple[str, ...] = CASE_MANAGEMENT_TYPES + WORKFLOW_TYPES,
) -> list[Any]:
    """``pytest.param`` per example, with its ``test_id``."""
    return [pytest.param(example, id=example.test_id) for example in hl7_examples(versions, types)]
