"""The R4 ⇄ R5 element table (``mappings/r4-r5-elements.json``), loaded once.

Simple renames, merges and code changes are data so that a reviewer can check them against the
specification without reading code; structural changes live in ``_structural.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fhir_cm.terminology import mappings_dir

__all__ = ["TABLE", "CodeChange", "ElementTable", "Merge", "Rename"]

_FILE = "r4-r5-elements.json"


@dataclass(frozen=True, slots=True)
class Rename:
    """An element that only changed its name (``r4`` and ``r5`` are full paths)."""

    r4: str
    r5: str


@dataclass(frozen=True, slots=True)
class Merge:
    """An R4 CodeableConcept list plus Reference list that became one R5 CodeableReference list."""

    r4: tuple[str, str]
    r5: str
    r5_item_element: str | None


@dataclass(frozen=True, slots=True)
class CodeChange:
    """A code element whose required value set changed; codes not listed are the same in both."""

    r4: str
    r5: str
    r4_to_r5: dict[str, str]
    r5_to_r4: dict[str, str]


@dataclass(frozen=True, slots=True)
class ElementTable:
    renames: tuple[Rename, ...]
    merges: tuple[Merge, ...]
    codes: tuple[CodeChange, ...]
    constants: dict[str, Any]


def _load() -> ElementTable:
    data = json.loads((mappings_dir() / _FILE).read_text(encoding="utf-8"))
    return ElementTable(
        renames=tuple(Rename(r["r4"], r["r5"]) for r in data["renames"]),
        merges=tuple(Merge((m["r4"][0], m["r4"][1]), m["r5"], m.get("r5ItemElement")) for m in data["merges"]["rules"]),
        codes=tuple(CodeChange(c["r4"], c["r5"], c["r4ToR5"], c["r5ToR4"]) for c in data["codes"]["rules"]),
        constants=data["constants"],
    )


TABLE = _load()
