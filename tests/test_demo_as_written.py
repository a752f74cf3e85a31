"""`fhir-cm demo` says a move the hospital dated with a month as written.

The demo lists the transitions the tracker recorded. When the hospital's Encounter on the server says
the stay ended "2026-10", the case holds the stay as ended by 2026-10-31 and the demo printed that day,
which nobody set; it prints "2026-10" now.
"""

from __future__ import annotations

import calendar
import datetime as dt
import uuid
from pathlib import Path

import pytest

from fhir_cm.domain import Case
from fhir_cm.store import list_cases, open_store
from tests.servers import RunningServer
from tests.sync.test_transitions_as_written import end_as_a_month
from tests.test_demo import _run, _summary

TODAY = "2026-11-30"  # the last of a month: a demo's last discharge, moved to its month's end, is no later


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _last_discharge(cases: list[Case]) -> tuple[Case, str]:
    """A case and its last stay, discharged somewhere the case does not follow with another stay (so
    the stay may end on the last day of its month without overlapping one), not on that day already."""
    for case in cases:
        stays = sorted(case.stays, key=lambda s: s.start)
        last = stays[-1] if stays else None
        if last is None or last.end is None or last.end == _month_end(last.end):
            continue
        if any(t.from_stay == last.id and t.date == last.end for t in case.transitions):
            return case, last.id
    raise AssertionError("no demo case ends with a discharge from a stay")


@pytest.mark.server
def test_the_demo_says_a_move_dated_with_a_month_as_written(tmp_path: Path, sekmet: RunningServer) -> None:
    system = f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    extra = {"FHIR_CM_IDENTIFIER_SYSTEM": system}
    args = ("--fhir-base", sekmet.base_url, "--today", TODAY, "--json")
    _summary(_run(tmp_path, *args, extra_env=extra))
    with open_store(f"sqlite:///{tmp_path / 'fhir-cm.db'}") as store, store.session(read_only=True) as s:
        case, stay_id = _last_discharge(list_cases(s))
    stay = next(s for s in case.stays if s.id == stay_id)
    assert stay.end is not None
    month = stay.end.strftime("%Y-%m")

    end_as_a_month(sekmet.base_url, system, stay_id, month)

    again = _run(tmp_path, *args, extra_env=extra)
    summary = _summary(again)
    lines = [line for line in again.stderr.splitlines() if line.startswith(f"  {case.id}  ")]
    assert any(f"  {case.id}  {month}  " in line for line in lines), lines
    assert not any(_month_end(stay.end).isoformat() in line for line in lines), lines
    moved = [
        t
        for t in summary["transitions"]
        if t["case_id"] == case.id and t["from_stay"] == stay_id and t["date"] == _month_end(stay.end).isoformat()
    ]
    assert [t.get("date_as_written") for t in moved] == [month], summary["transitions"]
