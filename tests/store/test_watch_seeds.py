"""The cases whose Encounter history the watch has read: its first round marks every open case at
once, which in a large programme is more rows than one statement may carry parameters for."""

from __future__ import annotations

import datetime as dt

from fhir_cm.store import Store, mark_watched
from fhir_cm.store._watch import watched_cases
from tests.store.params import stock_sqlite_limit

BASE = "http://hapi.example/fhir"
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
#: Three parameters a row: past PostgreSQL's 65,535 (and a stock SQLite's 32,766).
OPEN_CASES = 22_000


def test_a_first_round_marks_every_open_case_however_many(store: Store) -> None:
    stock_sqlite_limit(store)
    ids = [f"case-{n:05d}" for n in range(OPEN_CASES)]
    with store.session() as s:
        mark_watched(s, BASE, ids[:10], now=T0)
    with store.session() as s:
        mark_watched(s, f"{BASE}/", ids, now=T0 + dt.timedelta(hours=1))  # again for the first ten: harmless
    with store.session(read_only=True) as s:
        assert watched_cases(s, BASE) == set(ids)
