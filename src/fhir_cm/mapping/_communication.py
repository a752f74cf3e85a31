"""Contact ⇄ Communication: a monitoring touch-point, done (status ``completed``).

``medium`` says how (v3 ParticipationMode: FACE, PHONE, VIDEOCONF, MSGWRIT), ``sent`` when, and the
note is the payload — R4 ``payload.contentString``; R5 dropped the string, so
``payload.contentCodeableConcept.text``. ``partOf`` links the contact to the case's EpisodeOfCare.
"""

from __future__ import annotations

from ._base import FhirVersion
from ._fields import ResourceSpec, Shape, concept_items, date, party, refs, text

__all__ = ["COMMUNICATION"]


def _shape(version: FhirVersion) -> Shape:
    note = ("payload", 0, "contentCodeableConcept", "text") if version == "R5" else ("payload", 0, "contentString")
    return Shape(
        (
            concept_items("mode", ("medium",), "contact-mode-medium"),
            party("patient", ("subject",), get=lambda c, ctx: ctx.owner.patient, derived=True),
            date("date", ("sent",)),
            text("note", note),
            refs("episode", ("partOf",), "EpisodeOfCare", get=lambda c, ctx: [ctx.owner.id], derived=True),
        )
    )


COMMUNICATION = ResourceSpec(
    "Communication", {"R4": _shape("R4"), "R5": _shape("R5")}, skeleton=lambda ctx: {"status": "completed"}
)
