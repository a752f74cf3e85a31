"""Hypothesis strategies for valid domain objects, shared by every test package.

``cases()`` draws whole, coherent cases: unique ids, goals and referrals that address the case's
own needs, referrals that follow up the case's own stays, a status history that ends in the current
status, reasons where the life cycle wants them. Text avoids control characters and surrounding
whitespace (FHIR strings cannot carry them), so whatever these draw is also valid FHIR once mapped.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import strategies as st

from fhir_cm.domain import (
    Acuity,
    AssessmentDomain,
    CareSetting,
    Case,
    CaseStatus,
    Contact,
    ContactMode,
    DischargeDisposition,
    EligibilityReason,
    Goal,
    GoalAchievement,
    GoalStatus,
    Need,
    Party,
    PartyKind,
    Period,
    ProgrammeType,
    Referral,
    ReferralKind,
    ReferralStatus,
    StatusChange,
    Stay,
    StayStatus,
    TeamMember,
    TeamRole,
)

__all__ = [
    "case_ids",
    "cases",
    "contacts",
    "days",
    "entity_ids",
    "goals",
    "needs",
    "parties",
    "referrals",
    "stays",
    "team_members",
    "texts",
]

_NEEDS_REASON = {ReferralStatus.REJECTED, ReferralStatus.CANCELLED, ReferralStatus.FAILED, ReferralStatus.ON_HOLD}
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."

#: Days between 2000 and 2035: wide enough for every ordering, narrow enough to shrink well.
days = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2035, 12, 31))

_gaps = st.integers(0, 800).map(lambda n: dt.timedelta(days=n))

#: Non-empty words: letters, digits, punctuation, symbols (incl. '<' and '&') and inner spaces.
texts = (
    st.text(st.characters(categories=("L", "N", "P", "S"), include_characters=" "), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)

entity_ids = st.text(_ID_CHARS, min_size=1, max_size=16).filter(lambda i: i not in (".", ".."))  # no URL carries those
case_ids = entity_ids


#: Other servers' bases an outside party's record may be kept at.
outside_servers = st.sampled_from(["https://other.example/fhir", "http://10.1.2.3:8080/baseR4", "https://gp.example"])


def parties(kind: PartyKind | None = None) -> st.SearchStrategy[Party]:
    """A party of ``kind`` (any kind if None), with or without a name; but for a case's patient, local
    or an outside party (another server's record)."""
    kinds = st.just(kind) if kind is not None else st.sampled_from(PartyKind)
    servers = st.none() if kind is PartyKind.PATIENT else st.none() | outside_servers
    return st.builds(Party, kind=kinds, id=entity_ids, name=st.none() | texts, server=servers)


def _ordered_pair(draw: st.DrawFn, *, start_optional: bool = False, end_optional: bool = True) -> tuple:
    a, b = sorted((draw(days), draw(days)))
    start = None if start_optional and draw(st.booleans()) else a
    end = None if end_optional and draw(st.booleans()) else b
    return start, end


@st.composite
def needs(draw: st.DrawFn, id_: str) -> Need:
    recorded, resolved = _ordered_pair(draw)
    return Need(
        id=id_,
        domain=draw(st.sampled_from(AssessmentDomain)),
        finding=draw(texts),
        recorded=recorded,
        resolved=resolved,
        strengths=draw(st.lists(texts, max_size=2)),
    )


@st.composite
def goals(draw: st.DrawFn, id_: str, need_ids: list[str]) -> Goal:
    start, due = _ordered_pair(draw, start_optional=True)
    if start is None and due is None:
        due = draw(days)
    return Goal(
        id=id_,
        description=draw(texts),
        self_care=draw(st.booleans()),
        status=draw(st.sampled_from(GoalStatus)),
        achievement=draw(st.none() | st.sampled_from(GoalAchievement)),
        start=start,
        due=due,
        target=draw(st.none() | texts),
        addresses=draw(st.lists(st.sampled_from(need_ids), unique=True, max_size=2)) if need_ids else [],
    )


@st.composite
def stays(draw: st.DrawFn, id_: str) -> Stay:
    status = draw(st.sampled_from(StayStatus))
    start, end = _ordered_pair(draw, end_optional=status is not StayStatus.FINISHED)
    done = status in (StayStatus.FINISHED, StayStatus.CANCELLED)
    return Stay(
        id=id_,
        setting=draw(st.sampled_from(CareSetting)),
        status=status,
        start=start,
        end=end,
        discharge_disposition=draw(st.none() | st.sampled_from(DischargeDisposition)) if done else None,
        provider=draw(st.none() | parties(PartyKind.ORGANISATION)),
    )


@st.composite
def referrals(draw: st.DrawFn, id_: str, need_ids: list[str], stay_ids: list[str]) -> Referral:
    status = draw(st.sampled_from(ReferralStatus))
    authored, due = _ordered_pair(draw)
    reason = draw(texts) if status in _NEEDS_REASON else draw(st.none() | texts)
    return Referral(
        id=id_,
        kind=draw(st.sampled_from(ReferralKind)),
        service=draw(texts),
        status=status,
        status_reason=reason,
        authored=authored,
        due=due,
        target=draw(st.none() | parties()),
        addresses=draw(st.lists(st.sampled_from(need_ids), unique=True, max_size=2)) if need_ids else [],
        for_stay=draw(st.none() | st.sampled_from(stay_ids)) if stay_ids else None,
        requester=draw(st.none() | parties(PartyKind.PRACTITIONER) | parties(PartyKind.ORGANISATION)),
    )


@st.composite
def team_members(draw: st.DrawFn, id_: str) -> TeamMember:
    start, end = _ordered_pair(draw, start_optional=True)
    return TeamMember(id=id_, role=draw(st.sampled_from(TeamRole)), party=draw(parties()), start=start, end=end)


@st.composite
def contacts(draw: st.DrawFn, id_: str) -> Contact:
    return Contact(id=id_, date=draw(days), mode=draw(st.sampled_from(ContactMode)), note=draw(st.none() | texts))


@st.composite
def _status(draw: st.DrawFn, start: dt.date) -> tuple[CaseStatus, list[StatusChange], dt.date]:
    """The current status, a history ending in it (or none), and the day the last status began."""
    if draw(st.booleans()):
        return draw(st.sampled_from(CaseStatus)), [], start
    statuses = draw(st.lists(st.sampled_from(CaseStatus), min_size=1, max_size=4))
    gaps = draw(st.lists(_gaps, min_size=len(statuses) - 1, max_size=len(statuses) - 1))
    starts = [start]
    for gap in gaps:
        starts.append(starts[-1] + gap)
    history = [
        StatusChange(
            status=s,
            start=starts[i],
            end=starts[i + 1] if i + 1 < len(statuses) else None,
            reason=draw(st.none() | texts),
        )
        for i, s in enumerate(statuses)
    ]
    return statuses[-1], history, starts[-1]


@st.composite
def cases(draw: st.DrawFn, max_items: int = 3) -> Case:
    """A valid case with up to ``max_items`` of each kind of entity."""
    stem = draw(case_ids)

    def ids(prefix: str) -> list[str]:
        n = draw(st.integers(0, max_items))
        return [f"{prefix}{i}.{stem}"[:64] for i in range(n)]

    need_ids, goal_ids, stay_ids = ids("n"), ids("g"), ids("s")
    referral_ids, member_ids, contact_ids = ids("r"), ids("t"), ids("k")
    start = draw(days)
    status, history, last_start = draw(_status(start))
    ended = status in (CaseStatus.CLOSED, CaseStatus.CANCELLED)
    end = last_start + draw(_gaps) if ended or draw(st.booleans()) else None
    manager = draw(st.none() | parties(PartyKind.PRACTITIONER))
    asked = [draw(referrals(i, need_ids, stay_ids)) for i in referral_ids]
    # A referral's own requester is one other than the case manager (the API keeps no other).
    asked = [r.model_copy(update={"requester": None}) if r.requester == manager else r for r in asked]
    return Case(
        id=f"c.{stem}"[:64],
        programme=draw(st.sampled_from(ProgrammeType)),
        status=status,
        status_history=history,
        period=Period(start=start, end=end),
        patient=draw(parties(PartyKind.PATIENT)),
        case_manager=manager,
        referral_source=draw(st.none() | parties()),
        eligibility=draw(st.lists(st.sampled_from(EligibilityReason), unique=True, max_size=3)),
        acuity=draw(st.sampled_from(Acuity)),
        plan_summary=draw(st.none() | texts),
        needs=[draw(needs(i)) for i in need_ids],
        goals=[draw(goals(i, need_ids)) for i in goal_ids],
        referrals=asked,
        team=[draw(team_members(i)) for i in member_ids],
        contacts=[draw(contacts(i)) for i in contact_ids],
        stays=[draw(stays(i)) for i in stay_ids],
    )
