"""Referral ⇄ ServiceRequest (US Core: status, intent, category, code, subject).

``code`` carries the kind of referral (our coding and a SNOMED CT procedure) with the service in
words as its text; R5 wraps it in a CodeableReference (``code.concept``). ``category`` holds the US
Core ServiceRequest category codes for the kind. The request's status is the coarse one
(request-status); the referral's exact life cycle lives on its Task (``_task.py``). R4
``reasonReference`` became R5 ``reason`` (CodeableReference).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import terminology as T
from ..domain import PartyKind
from ._base import FhirVersion
from ._condition import first_display
from ._fields import (
    Ctx,
    Field,
    ResourceSpec,
    Shape,
    code,
    codings_at,
    concept_items,
    date,
    party,
    party_item,
    ref,
    refs,
    text,
)
from ._json import get_in

__all__ = ["SERVICE_REQUEST", "code_path"]


def code_path(version: FhirVersion) -> tuple[str, ...]:
    """Where the request's CodeableConcept is: R4 ``code``, R5 ``code.concept``."""
    return ("code", "concept") if version == "R5" else ("code",)


def _kind(version: FhirVersion) -> Field:
    """The kind of referral: from ``code`` (ours, or a SNOMED CT procedure), else from ``category``."""
    f = codings_at("kind", (*code_path(version), "coding"), "referral-kind-code")

    def read(obj: Mapping[str, Any], ctx: Ctx) -> str | None:
        categories = [c for cc in obj.get("category") or () if isinstance(cc, dict) for c in cc.get("coding") or ()]
        return f.read(obj, ctx) or T.domain_value("referral-kind-category", categories)

    return Field(f.name, f.get, read, f.write, lambda obj, v, ctx: read(obj, ctx) == v, written=f.written)


def _service(version: FhirVersion) -> Field:
    """What is asked for, in words: ``code.text``, else the display of a code."""
    f = text("service", (*code_path(version), "text"))
    return Field(
        f.name, f.get, lambda obj, ctx: first_display(get_in(obj, code_path(version))), f.write, written=f.written
    )


def _shape(version: FhirVersion) -> Shape:
    r5 = version == "R5"
    return Shape(
        (
            code("status", ("status",), "referral-status-servicerequest", derived=True),
            concept_items("kind", ("category",), "referral-kind-category", own=False, derived=True),
            _kind(version),
            _service(version),
            party("patient", ("subject",), get=lambda r, ctx: ctx.owner.patient, derived=True),
            ref("for_stay", ("encounter",), "Encounter"),
            date("authored", ("authoredOn",)),
            date("due", ("occurrenceDateTime",), last=True, replaces=("occurrencePeriod", "occurrenceTiming")),
            party_item("target", ("performer",)),
            party(
                "requester",
                ("requester",),
                [PartyKind.PRACTITIONER, PartyKind.ORGANISATION],
                get=lambda r, ctx: r.requester or ctx.owner.case_manager,
                derived=True,
            ),
            refs(
                "addresses",
                ("reason",) if r5 else ("reasonReference",),
                "Condition",
                wrap=(lambda r: {"reference": r}) if r5 else (lambda r: r),
                unwrap=(lambda i: i.get("reference")) if r5 else (lambda i: i),
            ),
        )
    )


SERVICE_REQUEST = ResourceSpec(
    "ServiceRequest", {"R4": _shape("R4"), "R5": _shape("R5")}, skeleton=lambda ctx: {"intent": "order"}
)
