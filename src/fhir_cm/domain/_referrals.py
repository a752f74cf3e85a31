"""The referral life cycle: which status may follow which.

The moves follow the Gravity SDOH referral Task state machine (requested → accepted / rejected →
in progress ↔ on hold → completed / failed, cancellable until done), so a referral tracked here
means the same thing to the community organisation's system that receives it.
"""

from __future__ import annotations

from ._models import Referral
from ._types import ReferralStatus as S
from ..errors import FhirCmError

__all__ = ["ReferralTransitionError", "allowed_referral_moves", "move_referral"]

_MOVES: dict[S, frozenset[S]] = {
    S.DRAFT: frozenset({S.REQUESTED, S.CANCELLED}),
    S.REQUESTED: frozenset({S.ACCEPTED, S.REJECTED, S.CANCELLED}),
    S.ACCEPTED: frozenset({S.IN_PROGRESS, S.ON_HOLD, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.ON_HOLD, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.ON_HOLD: frozenset({S.IN_PROGRESS, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.REJECTED: frozenset(),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
}


class ReferralTransitionError(FhirCmError, ValueError):
    """A referral was asked to move to a status its life cycle does not allow from where it is."""


def allowed_referral_moves(status: S) -> frozenset[S]:
    """The statuses a referral in ``status`` may move to next."""
    return _MOVES[status]


def move_referral(referral: Referral, to: S, reason: str | None = None) -> Referral:
    """A copy of ``referral`` moved to ``to``; raises if the life cycle forbids the move."""
    if to not in _MOVES[referral.status]:
        allowed = ", ".join(sorted(_MOVES[referral.status])) or "none (it is final)"
        raise ReferralTransitionError(f"a referral cannot move from '{referral.status}' to '{to}'; allowed: {allowed}")
    return Referral.model_validate({**referral.model_dump(), "status": to, "status_reason": reason})
