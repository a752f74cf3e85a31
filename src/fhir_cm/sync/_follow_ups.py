"""What the tracker asks the case manager to act on once a case's stays are known.

A **post-discharge follow-up** referral for every acute-hospital discharge during the case (due
``FOLLOW_UP_DAYS`` after it), the **receiving provider** of every move on the care team (role by the
setting it receives the person in), the follow-ups of what turned out not to be a discharge
cancelled while still open, and those nobody took up yet dated again from a corrected discharge day.
Kept apart from the tracker's reading of Encounters: these are rules on a case, no server involved,
and placement (``_placement``) assigns roles by the same table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Collection, Mapping

from ..domain import (
    CareSetting,
    Case,
    DischargeDisposition,
    Referral,
    ReferralKind,
    ReferralStatus,
    ReferralTransitionError,
    Stay,
    TeamMember,
    TeamRole,
    derive_transitions,
    hospital_discharges,
    move_referral,
)

__all__ = ["FOLLOW_UP_DAYS", "RECEIVING_ROLE", "WITHDRAWN_REASON", "act_on_transitions", "follow_up_for"]

#: A hospital discharge gets a follow-up due this many days later.
FOLLOW_UP_DAYS = 7
#: The part a receiving provider plays in the care team, by the setting it receives the person in.
RECEIVING_ROLE: Mapping[CareSetting, TeamRole] = {
    CareSetting.ACUTE_HOSPITAL: TeamRole.SPECIALIST,
    CareSetting.EMERGENCY: TeamRole.SPECIALIST,
    CareSetting.PSYCHIATRIC: TeamRole.SPECIALIST,
    CareSetting.SKILLED_NURSING: TeamRole.NURSE,
    CareSetting.LONG_TERM_CARE: TeamRole.NURSE,
    CareSetting.HOSPICE: TeamRole.NURSE,
    CareSetting.INPATIENT_REHABILITATION: TeamRole.THERAPIST,
    CareSetting.HOME_HEALTH: TeamRole.HOME_HEALTH_AGENCY,
    CareSetting.AMBULATORY: TeamRole.PRIMARY_CARE,
    CareSetting.HOME: TeamRole.PRIMARY_CARE,
}

#: Why a follow-up is cancelled when what it followed turns out not to be a discharge.
WITHDRAWN_REASON = (
    "the hospital stay it followed was not a discharge: cancelled, entered in error, or continued in hospital"
)


def _derived_id(prefix: str, cause: str) -> str:
    """An entity id made from what caused it (stable across runs and stores), within the 64-character limit."""
    candidate = f"{prefix}-{cause}"
    return candidate if len(candidate) <= 64 else f"{prefix}-{_digest(cause)}"


def _digest(cause: str) -> str:
    """A cause no id can hold as it is (too long; an outside party's server URL), as an id's part."""
    return hashlib.sha256(cause.encode()).hexdigest()[:40]


def follow_up_for(stay: Stay, case: Case, discharges: Collection[str]) -> Referral | None:
    """The follow-up a hospital discharge calls for, or None (not a discharge, before the case, or died).

    ``discharges``: the ids of the case's stays that are hospital discharges (``hospital_discharges``).
    """
    if stay.id not in discharges or stay.end is None:
        return None
    if stay.discharge_disposition is DischargeDisposition.EXPIRED or stay.end < case.period.start:
        return None
    return Referral(
        id=_derived_id("follow-up", stay.id),
        kind=ReferralKind.FOLLOW_UP,
        service=f"Post-discharge follow-up within {FOLLOW_UP_DAYS} days",
        authored=stay.end,
        due=stay.end + dt.timedelta(days=FOLLOW_UP_DAYS),
        for_stay=stay.id,
    )


def _withdrawn_follow_ups(case: Case, discharges: Collection[str]) -> list[Referral]:
    """The case's referrals, each open follow-up the tracker asked for cancelled if the stay it followed
    is no longer a discharge (taken back, or continued by another hospital stay that came in since)."""
    out = []
    for r in case.referrals:
        if r.for_stay is not None and r.for_stay not in discharges and r.id == _derived_id("follow-up", r.for_stay):
            try:
                r = move_referral(r, ReferralStatus.CANCELLED, WITHDRAWN_REASON)
            except ReferralTransitionError:
                pass  # done, failed or already cancelled: what happened stays as it was
        out.append(r)
    return out


#: A follow-up in these statuses is not taken up yet: its dates may still follow the discharge's.
_NOT_TAKEN_UP = frozenset({ReferralStatus.DRAFT, ReferralStatus.REQUESTED})


def _redated(referrals: list[Referral], case: Case, discharges: Collection[str]) -> list[Referral]:
    """``referrals``, each follow-up the tracker asked for and nobody took up yet dated again from its
    discharge's day, when the hospital corrected it since (it kept the day first entered)."""
    ends = {s.id: s.end for s in case.stays if s.id in discharges}
    out = []
    for r in referrals:
        end = ends.get(r.for_stay) if r.for_stay is not None else None
        if (
            end is not None
            and r.status in _NOT_TAKEN_UP
            and r.authored != end
            and r.id == _derived_id("follow-up", str(r.for_stay))
        ):
            r = r.model_copy(update={"authored": end, "due": end + dt.timedelta(days=FOLLOW_UP_DAYS)})
        out.append(r)
    return out


def act_on_transitions(case: Case) -> tuple[Case, int, int, int]:
    """The case with the follow-ups and team members its stays call for, the follow-ups of what
    turned out not to be a discharge cancelled, and those of a discharge whose day was corrected dated
    from it: ``(case, follow-ups added, members added, cancelled)``."""
    discharges = {s.id for s in hospital_discharges(case.stays)}
    referrals = _redated(_withdrawn_follow_ups(case, discharges), case, discharges)
    withdrawn = sum(a.status != b.status for a, b in zip(referrals, case.referrals, strict=True))
    if referrals != case.referrals:
        case = case.model_validate({**case.model_dump(), "referrals": [r.model_dump() for r in referrals]})
    followed = {r.for_stay for r in case.referrals if r.kind is ReferralKind.FOLLOW_UP and r.for_stay}
    follow_ups = [
        r for s in case.stays if s.id not in followed and (r := follow_up_for(s, case, discharges)) is not None
    ]
    stays = {s.id: s for s in case.stays}
    # A party by who it is: an outside provider (another server's Organization) is not the local one of its id.
    on_team = {(m.party.kind, m.party.id, m.party.server) for m in case.team}
    members: list[TeamMember] = []
    for t in derive_transitions(case.stays, [*case.referrals, *follow_ups]):
        provider = t.receiving_provider
        role = RECEIVING_ROLE.get(t.to_setting)
        if provider is None or role is None or (provider.kind, provider.id, provider.server) in on_team:
            continue
        stay = stays.get(t.to_stay) if t.to_stay else None
        cause = provider.id if provider.server is None else _digest(f"{provider.server}/{provider.id}")
        members.append(
            TeamMember(
                id=_derived_id("member", cause),
                role=role,
                party=provider,
                start=stay.start if stay else t.date,
                end=stay.end if stay else None,
            )
        )
        on_team.add((provider.kind, provider.id, provider.server))
    if not follow_ups and not members:
        return case, 0, 0, withdrawn
    updated = case.model_validate(
        {
            **case.model_dump(),
            "referrals": [*case.model_dump()["referrals"], *(r.model_dump() for r in follow_ups)],
            "team": [*case.model_dump()["team"], *(m.model_dump() for m in members)],
        }
    )
    return updated, len(follow_ups), len(members), withdrawn
