"""Days a case's sources wrote as a year or a month, found by the entity that holds them.

The model holds days: a referral a hospital wrote as due "2024-06" is held as due by 2024-06-30, so
that sorting and "overdue" work on a real day. A case's days read from such a date are named by a JSON
pointer into the case (``/referrals/2/due`` → ``2024-06``: the case's ``dates_as_written``). A view
that picks an entity out of the case — the next follow-up due, a move's follow-up — looks its day up
here by the entity, so it can say the date as the hospital wrote it rather than a deadline nobody set.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, TypeVar

from ._case import Case
from ._transitions import Transition, follow_up_referrals

__all__ = ["referral_days_as_written", "with_follow_ups_as_written"]

T = TypeVar("T", bound=Transition)


def referral_days_as_written(
    case: Case, written: Mapping[str, str] | None, field: Literal["due", "authored"]
) -> dict[str, str]:
    """Referral id → its ``field`` as written, for the referrals of ``case`` whose ``field`` was read
    from a year or a month (``written``: the case's dates as written)."""
    if not written:
        return {}
    return {
        r.id: text for i, r in enumerate(case.referrals) if (text := written.get(f"/referrals/{i}/{field}")) is not None
    }


def with_follow_ups_as_written(case: Case, transitions: Iterable[T], written: Mapping[str, str] | None) -> list[T]:
    """``transitions`` (derived from ``case`` or recorded for it), each move's follow-up due as written
    where the follow-up referral for the stay it leaves gives that day from a year or a month: its due
    (its authored day when it has none, as ``derive_transitions`` dates it). A recorded move whose
    follow-up the case has since dated otherwise is left as recorded."""
    follow_ups = follow_up_referrals(case.referrals)
    dues, authored = referral_days_as_written(case, written, "due"), referral_days_as_written(case, written, "authored")
    out = []
    for t in transitions:
        r = follow_ups.get(t.from_stay) if t.from_stay is not None else None
        text = None
        if r is not None and t.follow_up_due is not None and (r.due or r.authored) == t.follow_up_due:
            text = dues.get(r.id) if r.due is not None else authored.get(r.id)
        out.append(t.model_copy(update={"follow_up_due_as_written": text}) if text is not None else t)
    return out
