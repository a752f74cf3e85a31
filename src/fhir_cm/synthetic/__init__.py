"""Synthetic case journeys: deterministic, realistic test and demo data that never names a real person.

Each case walks the case-management cycle — identification from hospital use,
assessment, a plan with (self-care) goals, referrals through their life cycle, a changing care team,
monitoring contacts as frequent as the acuity asks, stays and transitions between care settings, and
closure for some. The same ``seed`` gives byte-identical cases on any machine, because every draw —
ids included — comes from one ``random.Random`` and nothing reads the clock.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

from fhir_cm.domain import Case

from ._journey import JourneyBuilder
from ._people import build_pools
from ._summary import GenerationSummary

__all__ = ["DEFAULT_TODAY", "GenerationSummary", "generate_cases"]

#: The day synthetic journeys treat as "today" unless told otherwise: fixed, so output is reproducible.
DEFAULT_TODAY = dt.date(2025, 6, 30)


def generate_cases(n: int, seed: int, *, today: dt.date | None = None) -> Iterator[Case]:
    """Yield ``n`` synthetic cases for ``seed``; nothing in them happens after ``today``.

    Every date is drawn relative to ``today``: another ``today`` gives the same journeys (ids,
    settings, statuses, counts), each date shifted by the difference. The demo dates its journeys
    up to the real today this way; ``DEFAULT_TODAY`` keeps generated files reproducible.

    The run's practitioners and organisations are drawn first, then each case from its own generator
    seeded by the run's, so the first ``k`` cases of a run are the same whatever ``n`` is.
    """
    if n < 0:
        raise ValueError(f"the number of cases must not be negative (got {n})")
    run = random.Random(seed)
    pools = build_pools(run)
    anchor = today or DEFAULT_TODAY
    for _ in range(n):
        yield JourneyBuilder(random.Random(run.getrandbits(64)), pools, anchor).build()
