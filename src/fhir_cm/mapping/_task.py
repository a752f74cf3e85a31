"""Referral ⇄ Task: the referral's fulfilment life cycle (Gravity SDOH TaskForReferralManagement).

``code`` = task-code ``fulfill``, ``intent`` = order, ``focus`` = the ServiceRequest, ``for`` = the
patient, ``owner`` = the referral target, ``requester`` (1..1 in Gravity) = the referral's own
requester (a supervisor's, in a case with no case manager), else the case manager; it is read back
as the referral's only where it is not the case manager (``_case._Reader.referrals``). ``status`` is the
referral status word for word — the Task holds the states (accepted, rejected, in progress, failed…)
that ServiceRequest.status cannot — and ``statusReason.text`` says why (R5: ``statusReason`` is a
CodeableReference, so ``statusReason.concept.text``).
"""

from __future__ import annotations

from ..domain import PartyKind
from ._base import FhirVersion
from ._codes import TASK_FULFILL
from ._fields import ResourceSpec, Shape, code, date, party, ref, text
from ._json import clone

__all__ = ["TASK"]


def _shape(version: FhirVersion) -> Shape:
    reason = ("statusReason", "concept", "text") if version == "R5" else ("statusReason", "text")
    return Shape(
        (
            code("status", ("status",), "referral-status-task"),
            text("status_reason", reason),
            ref("focus", ("focus",), "ServiceRequest", get=lambda r, ctx: r.id, derived=True),
            party("patient", ("for",), get=lambda r, ctx: ctx.owner.patient, derived=True),
            date("authored", ("authoredOn",), derived=True),
            party("target", ("owner",), derived=True),
            party(
                "requester",
                ("requester",),
                [PartyKind.PRACTITIONER, PartyKind.ORGANISATION],
                get=lambda r, ctx: r.requester or ctx.owner.case_manager,
                derived=True,
            ),
        )
    )


TASK = ResourceSpec(
    "Task",
    {"R4": _shape("R4"), "R5": _shape("R5")},
    skeleton=lambda ctx: {"intent": "order", "code": clone(TASK_FULFILL)},
)
