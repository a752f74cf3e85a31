"""Choosing the handful of journeys the demo walks."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

from ..domain import CareSetting, Case, CaseStatus
from ..synthetic import generate_cases

#: The seed of the demo's journeys: fixed, so every run (and every machine) walks the same cases.
DEMO_SEED = 1
#: How far into the seed's stream of journeys the demo looks for the cases that show the whole cycle.
_CANDIDATES = 500

_POST_ACUTE = (CareSetting.SKILLED_NURSING,)
_BACK_HOME = (CareSetting.HOME, CareSetting.HOME_HEALTH)


def shows_post_acute_pathway(case: Case) -> bool:
    """Whether a case went hospital → skilled nursing → home (or home health) with a follow-up booked."""
    moves = case.transitions
    return any(
        a.from_setting is CareSetting.ACUTE_HOSPITAL
        and a.to_setting in _POST_ACUTE
        and b.from_setting in _POST_ACUTE
        and b.to_setting in _BACK_HOME
        and b.follow_up_due is not None
        for a, b in pairwise(moves)
    )


def pick_cases(n: int, seed: int = DEMO_SEED, *, today: dt.date | None = None) -> list[Case]:
    """``n`` journeys of ``seed`` that together show the whole cycle, in the order the seed makes them.

    The first closed case with a hospital → skilled nursing → home pathway and its follow-up is always
    among them (the showcase); the others are the seed's first journeys, which mix open and closed
    cases so the caseload has something to show. The same ``n`` and seed always pick the same cases,
    and a smaller ``n`` picks a subset of a larger one's, whatever ``today`` the journeys are dated to
    (the synthetic journeys' dates are relative to it: see ``generate_cases``).
    """
    if n < 1:
        raise ValueError(f"the demo needs at least one case (got {n})")
    candidates: list[Case] = []
    showcase: Case | None = None
    for case in generate_cases(max(_CANDIDATES, n + 1), seed, today=today):
        candidates.append(case)
        if showcase is None and case.status is CaseStatus.CLOSED and shows_post_acute_pathway(case):
            showcase = case
        if showcase is not None and len(candidates) >= n:
            break
    chosen = [showcase] if showcase is not None else []
    chosen += [c for c in candidates if c is not showcase][: n - len(chosen)]
    order = {c.id: i for i, c in enumerate(candidates)}
    return sorted(chosen, key=lambda c: order[c.id])
