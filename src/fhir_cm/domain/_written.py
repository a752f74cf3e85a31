"""Days a case's sources wrote as a year or a month, found by the entity that holds them.

The model holds days: a referral a hospital wrote as due "2024-06" is held as due by 2024-06-30, so
that sorting and "overdue" work on a real day. A case's days read from such a date are named by a JSON
pointer into the case (``/referrals/2/due`` → ``2024-06``: the case's ``dates_as_written``). A view
that picks an entity out of the case — the next follow-up due, a move's follow-up — looks its day up
here by the entity, so it can say the date as the hospital wrote it rather than a deadline nobody set.
Whatever prints such a date for a person says it through :func:`say_day`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Literal, TypeVar

from ._case import Case
from ._transitions import Transition, follow_up_referrals

__all__ = ["referral_days_as_written", "say_day", "with_dates_as_written"]

T = TypeVar("T", bound=Transition)


def say_day(day: dt.date, as_written: str | None = None) -> str:
    """``day`` as a person should read it: as its source wrote it (``2024-06``) where that was a year
    or a month — the day alone would read as a date someone set — else the day (``2024-06-14``)."""
    return as_written if as_written is not None else day.isoformat()


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


def with_dates_as_written(case: Case, transitions: Iterable[T], written: Mapping[str, str] | None) -> list[T]:
    """``transitions`` (derived from ``case`` or recorded for it), each said as written where its day
    was read from a year or a month: the move's date where the stay's end (or start) that gives it was,
    and its follow-up due where the follow-up referral for the stay it leaves gives that day so — its
    due (its authored day when it has none, as ``derive_transitions`` dates it). A recorded move the
    case has since dated otherwise is left as recorded."""
    if not written:
        return list(transitions)
    follow_ups = follow_up_referrals(case.referrals)
    dues, authored = referral_days_as_written(case, written, "due"), referral_days_as_written(case, written, "authored")
    stays = {s.id: i for i, s in enumerate(case.stays)}
    out = []
    for t in transitions:
        changes: dict[str, str] = {}
        r = follow_ups.get(t.from_stay) if t.from_stay is not None else None
        if r is not None and t.follow_up_due is not None and (r.due or r.authored) == t.follow_up_due:
            text = dues.get(r.id) if r.due is not None else authored.get(r.id)
            if text is not None:
                changes["follow_up_due_as_written"] = text
        if (pointer := _date_pointer(case, stays, t)) is not None and (text := written.get(pointer)) is not None:
            changes["date_as_written"] = text
        out.append(t.model_copy(update=changes) if changes else t)
    return out


def _date_pointer(case: Case, stays: Mapping[str, int], t: Transition) -> str | None:
    """Where in ``case`` the move's day is read (``/stays/2/end``), as ``derive_transitions`` dates it:
    the end of the stay left, else (it has none) the start of the stay entered."""
    left, entered = stays.get(t.from_stay or ""), stays.get(t.to_stay or "")
    if left is not None and case.stays[left].end == t.date:
        return f"/stays/{left}/end"
    if entered is not None and case.stays[entered].start == t.date:
        return f"/stays/{entered}/start"
    return None
