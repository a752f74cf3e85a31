"""Team members ⇄ CareTeam participants: one CareTeam per case (US Core: role + member per participant).

Each participant carries the member's domain id as its element ``id``, so a member stays the same
member across updates (and changes to one participant leave the others' extensions alone). A
participant written by another system, with no id, gets a stable id derived from its content.
R4 ``participant.role`` is a list and ``period`` a Period; R5 has one ``role`` and ``coveragePeriod``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..domain import TeamMember
from ._base import FhirVersion
from ._codes import CARETEAM_CATEGORY
from ._fields import Ctx, ResourceSpec, Shape, code, concept, concept_items, date, model_items, party, text
from ._json import clone

__all__ = ["CARE_TEAM", "participant_id"]

_ROLE = "team-role-careteam"


def participant_id(item: Mapping[str, Any]) -> str:
    """The domain id of a participant: its element id, else a digest of what it says."""
    own = item.get("id")
    if isinstance(own, str) and own:
        return own
    digest = hashlib.sha1(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
    return f"p{digest[:24]}"


def _participant(version: FhirVersion) -> Shape:
    r5 = version == "R5"
    period = "coveragePeriod" if r5 else "period"
    return Shape(
        (
            text("id", ("id",)),
            concept("role", ("role",), _ROLE) if r5 else concept_items("role", ("role",), _ROLE),
            party("party", ("member",)),
            date("start", (period, "start")),
            date("end", (period, "end"), last=True),
        )
    )


def _shape(version: FhirVersion) -> Shape:
    return Shape(
        (
            code("status", ("status",), "case-status-careteam", derived=True),
            party("patient", ("subject",), derived=True),
            model_items(
                "team",
                ("participant",),
                _participant(version),
                TeamMember,
                ident=lambda m: m.id,
                defaults=lambda item, ctx: {"id": participant_id(item)},
            ),
        )
    )


def _skeleton(ctx: Ctx) -> dict[str, Any]:
    return {"category": [clone(CARETEAM_CATEGORY)]}


CARE_TEAM = ResourceSpec("CareTeam", {"R4": _shape("R4"), "R5": _shape("R5")}, skeleton=_skeleton)
