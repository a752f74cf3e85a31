"""Contact ⇄ Communication: a monitoring touch-point, done (status ``completed``).

``medium`` says how (v3 ParticipationMode: FACE, PHONE, VIDEOCONF, MSGWRIT), ``sent`` when, and the
note is a payload — R4 ``payload.contentString``; R5 dropped the string, so
``payload.contentCodeableConcept.text``. ``partOf`` links the contact to the case's EpisodeOfCare.

The note is the payload that holds text, wherever it is in the list: another system's payloads (a
letter as ``contentAttachment``, a ``contentReference``) are not the note and keep their place, and a
note added to such a Communication is a payload of its own — written into the letter's payload, it
was a second form of one ``content[x]``, which every server refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import FhirVersion
from ._fields import Field, ResourceSpec, Shape, concept_items, date, items, party, refs
from ._json import get_in

__all__ = ["COMMUNICATION"]


def _note(version: FhirVersion) -> Field:
    path: tuple[str, ...] = ("contentCodeableConcept", "text") if version == "R5" else ("contentString",)

    def decode(item: Mapping[str, Any], ctx: Any) -> str | None:
        value = get_in(item, path)
        return value if isinstance(value, str) and value else None

    def encode(note: str, ctx: Any) -> dict[str, Any]:
        return {"contentCodeableConcept": {"text": note}} if version == "R5" else {"contentString": note}

    def update(item: Mapping[str, Any], note: str, ctx: Any) -> dict[str, Any]:
        if version == "R5":  # the codes another system gave the payload's concept stay
            return {**item, "contentCodeableConcept": {**item["contentCodeableConcept"], "text": note}}
        return {**item, "contentString": note}

    return items("note", ("payload",), decode=decode, encode=encode, update=update, many=False)


def _shape(version: FhirVersion) -> Shape:
    return Shape(
        (
            concept_items("mode", ("medium",), "contact-mode-medium"),
            party("patient", ("subject",), get=lambda c, ctx: ctx.owner.patient, derived=True),
            date("date", ("sent",)),
            _note(version),
            refs("episode", ("partOf",), "EpisodeOfCare", get=lambda c, ctx: [ctx.owner.id], derived=True),
        )
    )


COMMUNICATION = ResourceSpec(
    "Communication", {"R4": _shape("R4"), "R5": _shape("R5")}, skeleton=lambda ctx: {"status": "completed"}
)
