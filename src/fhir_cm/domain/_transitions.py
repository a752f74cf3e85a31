"""Moves between care settings, read off a case's stays.

A transition is not stored on its own: it *is* the hand-off between two consecutive stays (or, after
the last stay, to where the discharge disposition sent the person). Deriving it keeps one source of
truth, which is also what a FHIR server holds (Encounters with periods and discharge dispositions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ._models import Party, Referral, Stay
from ._types import CareSetting, DischargeDisposition, ReferralKind, StayStatus

__all__ = [
    "READMISSION_WINDOW_DAYS",
    "TRANSFER_DAYS",
    "CurrentSetting",
    "Transition",
    "current_setting",
    "derive_transitions",
    "disposition_setting",
    "follow_up_referrals",
    "hospital_discharges",
    "transferred",
]

#: A return to hospital within this many days of a hospital discharge is a readmission.
READMISSION_WINDOW_DAYS = 30
#: An admission to an acute hospital this many days (or fewer) after another one sent the person to a
#: health care facility is a transfer (one episode of care, as CMS counts it), not a readmission.
TRANSFER_DAYS = 1

#: Where a discharge disposition sends a person when no next stay is known.
_DISPOSITION_SETTING: dict[DischargeDisposition, CareSetting] = {
    DischargeDisposition.HOME: CareSetting.HOME,
    DischargeDisposition.ALTERNATIVE_HOME: CareSetting.HOME,
    DischargeDisposition.LEFT_AGAINST_ADVICE: CareSetting.HOME,
    DischargeDisposition.SKILLED_NURSING: CareSetting.SKILLED_NURSING,
    DischargeDisposition.REHABILITATION: CareSetting.INPATIENT_REHABILITATION,
    DischargeDisposition.LONG_TERM_CARE: CareSetting.LONG_TERM_CARE,
    DischargeDisposition.HOSPICE: CareSetting.HOSPICE,
    DischargeDisposition.PSYCHIATRIC: CareSetting.PSYCHIATRIC,
}

_HOSPITAL = CareSetting.ACUTE_HOSPITAL


def disposition_setting(disposition: DischargeDisposition | None) -> CareSetting | None:
    """The care setting a discharge disposition implies, if it implies one."""
    return _DISPOSITION_SETTING.get(disposition) if disposition is not None else None


class Transition(BaseModel):
    """One move from one care setting to another."""

    model_config = ConfigDict(frozen=True)

    from_setting: CareSetting
    to_setting: CareSetting
    date: dt.date
    date_as_written: str | None = Field(
        default=None,
        description="The move's date as its source wrote it, where the stay's end (or start) that gives it "
        "was a year or a month ('2024-06': date is then the day it reads as); None where it is a day.",
    )
    discharge_disposition: DischargeDisposition | None = None
    from_stay: str | None = None
    to_stay: str | None = None
    receiving_provider: Party | None = None
    follow_up_due: dt.date | None = None
    follow_up_due_as_written: str | None = Field(
        default=None,
        description="The follow-up due as its source wrote it, where that was a year or a month "
        "('2024-06': follow_up_due is then the last day of it); None where it is a day.",
    )
    readmission: bool = False


class CurrentSetting(BaseModel):
    """Where a person is now, and since when: what a receiving provider asks first."""

    model_config = ConfigDict(frozen=True)

    setting: CareSetting
    since: dt.date


def _ordered(stays: Iterable[Stay]) -> list[Stay]:
    return sorted(
        (s for s in stays if s.status is not StayStatus.CANCELLED and s.status is not StayStatus.PLANNED),
        key=lambda s: (s.start, s.end or dt.date.max, s.id),
    )


def transferred(prev: Stay, stay: Stay) -> bool:
    """Whether ``stay`` is the acute hospital ``prev`` (an acute hospital) transferred the person to:
    one episode of care, so neither ``prev``'s end is a discharge nor ``stay`` a readmission."""
    return (
        prev.setting is _HOSPITAL
        and stay.setting is _HOSPITAL
        and prev.end is not None
        and prev.discharge_disposition is DischargeDisposition.OTHER_HEALTHCARE_FACILITY
        and dt.timedelta(0) <= stay.start - prev.end <= dt.timedelta(days=TRANSFER_DAYS)
    )


def _is_readmission(stay: Stay, earlier: Sequence[Stay]) -> bool:
    if stay.setting is not _HOSPITAL or any(transferred(prev, stay) for prev in earlier):
        return False
    window = dt.timedelta(days=READMISSION_WINDOW_DAYS)
    return any(
        prev.setting is _HOSPITAL and prev.end is not None and dt.timedelta(0) <= stay.start - prev.end <= window
        for prev in earlier
    )


def _continues(other: Stay, stay: Stay, *, later: bool) -> bool:
    """Whether the acute-hospital stay ``other`` keeps the person in hospital past ``stay``'s end: it
    began by then and ends later (or, ending the same day, comes after it), is still running having
    begun with or after it, or is where ``stay`` transferred the person."""
    assert stay.end is not None
    if transferred(stay, other):
        return True
    if other.start > stay.end:
        return False
    if other.end is None:
        return other.start >= stay.start  # one left open since before is no evidence of staying on
    return other.end > stay.end or (other.end == stay.end and later)


def hospital_discharges(stays: Iterable[Stay]) -> list[Stay]:
    """The finished acute-hospital stays at whose end the person left hospital, oldest first.

    Not those another acute-hospital stay continues: a ward move recorded as an Encounter of its
    own, the same hospitalisation recorded twice, a transfer to another acute hospital, or a return
    the same day. Of the stays of one hospitalisation only the last to end is its discharge.
    """
    hospital = [s for s in _ordered(stays) if s.setting is _HOSPITAL]
    return [
        stay
        for i, stay in enumerate(hospital)
        if stay.status is StayStatus.FINISHED
        and stay.end is not None
        and not any(_continues(other, stay, later=j > i) for j, other in enumerate(hospital) if j != i)
    ]


def derive_transitions(stays: Iterable[Stay], referrals: Iterable[Referral] = ()) -> list[Transition]:
    """Every move between care settings that a case's stays show, oldest first.

    A move is recorded when one stay ends and the next one is in a different setting, or when the
    last finished stay's discharge disposition names a setting (e.g. discharged home). A move into
    an acute hospital within 30 days of an acute-hospital discharge is a readmission, unless that
    hospital sent the person on to another health care facility (``other-hcf``) the same or the
    next day: a transfer. The follow-up due date comes from the follow-up referral made for the
    stay that was left.
    """
    ordered = _ordered(stays)
    follow_ups = {stay: r.due or r.authored for stay, r in follow_up_referrals(referrals).items()}
    out: list[Transition] = []
    for i, stay in enumerate(ordered):
        nxt = ordered[i + 1] if i + 1 < len(ordered) else None
        follow_up = follow_ups.get(stay.id)
        implied = disposition_setting(stay.discharge_disposition) if stay.end is not None else None
        if nxt is None:
            if implied is not None and implied is not stay.setting:
                out.append(_move(stay, implied, stay.end, follow_up))
            continue
        gap = stay.end is not None and nxt.start > stay.end
        if gap and implied is not None and implied not in (stay.setting, nxt.setting):
            # Discharged somewhere (e.g. home) and admitted again later: two moves, not one.
            out.append(_move(stay, implied, stay.end, follow_up))
            out.append(
                Transition(
                    from_setting=implied,
                    to_setting=nxt.setting,
                    date=nxt.start,
                    to_stay=nxt.id,
                    receiving_provider=nxt.provider,
                    readmission=_is_readmission(nxt, ordered[: i + 1]),
                )
            )
            continue
        if nxt.setting is stay.setting and stay.discharge_disposition is None:
            continue  # a continuation in the same setting (e.g. a ward move) is not a transition
        out.append(
            Transition(
                from_setting=stay.setting,
                to_setting=nxt.setting,
                date=stay.end or nxt.start,
                discharge_disposition=stay.discharge_disposition,
                from_stay=stay.id,
                to_stay=nxt.id,
                receiving_provider=nxt.provider,
                follow_up_due=follow_up,
                readmission=_is_readmission(nxt, ordered[: i + 1]),
            )
        )
    return out


def follow_up_referrals(referrals: Iterable[Referral]) -> dict[str, Referral]:
    """The follow-up referral made for each stay (the last one, if several): it dates the follow-up of
    the move out of that stay — its due day, or the day it was made when it has none."""
    return {r.for_stay: r for r in referrals if r.for_stay is not None and r.kind is ReferralKind.FOLLOW_UP}


def _move(stay: Stay, to: CareSetting, on: dt.date | None, follow_up: dt.date | None) -> Transition:
    return Transition(
        from_setting=stay.setting,
        to_setting=to,
        date=on or stay.start,
        discharge_disposition=stay.discharge_disposition,
        from_stay=stay.id,
        follow_up_due=follow_up,
    )


def current_setting(stays: Iterable[Stay]) -> CurrentSetting | None:
    """The care setting a person is in now, read off the stays like the transitions are.

    The setting of the stay in progress (the latest one, if the record shows several), in it since
    the move that brought the person there — a ward move within one setting is no move, so it
    counts from the first stay of that run. With no stay in progress: where the last transition
    went, if that was somewhere a discharge sent the person (home, say) rather than into a stay that
    has since ended without saying where to (then, as after a death, nobody knows: None).
    """
    ordered = _ordered(stays)
    moves = derive_transitions(ordered)
    in_progress = [s for s in ordered if s.status == StayStatus.IN_PROGRESS]
    if not in_progress:
        if not moves or moves[-1].to_stay is not None:
            return None
        return CurrentSetting(setting=moves[-1].to_setting, since=moves[-1].date)
    stay = in_progress[-1]
    left = {t.from_stay for t in moves}
    first = ordered.index(stay)
    while first > 0 and ordered[first - 1].setting == stay.setting and ordered[first - 1].id not in left:
        first -= 1
    arrived = ordered[first]
    since = next((t.date for t in reversed(moves) if t.to_stay == arrived.id), arrived.start)
    return CurrentSetting(setting=stay.setting, since=since)
