"""A store of more cases than a statement may carry bound parameters (65,535 on PostgreSQL, 32,766
in a SQLite built with the defaults): reading every case at once — a case manager's list, with a
cold cache — works. Years of closed cases add up to that many in a hospital's store.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from fhir_cm.domain import Case
from fhir_cm.store import Store, get_case_records, list_case_records, save_case
from fhir_cm.store._tables import CaseRow
from tests.store.params import stock_sqlite_limit

#: More cases than each backend's limit on the parameters of one statement.
CASES = {"sqlite": 33_000, "postgresql": 66_000}


def _fill(store: Store, make_case: Callable[..., Case]) -> list[str]:
    """Cases written as ``save_case`` writes them (one saved, its row copied under new ids)."""
    with store.session() as s:
        save_case(s, make_case("case-000000"))
        row = s.execute(select(*CaseRow.__table__.c)).one()._asdict()
        ids = [f"case-{n:06d}" for n in range(CASES[store.backend])]
        copies = [{**row, "case_id": case_id, "data": {**row["data"], "id": case_id}} for case_id in ids[1:]]
        s.execute(CaseRow.__table__.insert(), copies)
    return ids


def test_every_case_reads_at_once_past_the_drivers_parameter_limit(
    store: Store, make_case: Callable[..., Case]
) -> None:
    ids = _fill(store, make_case)
    stock_sqlite_limit(store)
    with store.session(read_only=True) as s:
        listed = list_case_records(s, cache=store.cases)  # none kept yet: all are read
        records = get_case_records(s, ids[-1_200:])
    assert [r.case.id for r in listed] == ids
    assert sorted(records) == ids[-1_200:]
