"""A stored case this version's model cannot read, on both backends: the reader of that very case gets
``UnreadableCase`` (its id and field, none of its values), list readers that opt in leave it out and
name it, the cache warming skips it, and nothing of it is changed."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from sqlalchemy import select

from fhir_cm.domain import Case, CaseStatus
from fhir_cm.store import (
    CaseCache,
    Store,
    UnreadableCase,
    get_case,
    get_case_record,
    get_case_records,
    list_case_records,
    list_cases,
    warm_case_cache,
)
from fhir_cm.store._tables import CaseRow
from tests.unreadable import SECRET_NOTE, make_unreadable


def _row(store: Store, case_id: str) -> tuple[int, dict[str, object]]:
    with store.session(read_only=True) as s:
        row = s.execute(select(CaseRow.revision, CaseRow.data).where(CaseRow.case_id == case_id)).one()
    return row.revision, row.data


def test_a_read_of_it_names_the_case_and_field_and_no_value(
    store_with_cases: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_with_cases
    make_unreadable(store, "case-1")
    before = _row(store, "case-1")

    with store.session(read_only=True) as s:
        for read in (lambda: get_case(s, "case-1"), lambda: get_case_record(s, "case-1")):
            with pytest.raises(UnreadableCase) as raised:
                read()
            assert (raised.value.case_id, raised.value.fields) == ("case-1", ["contacts.0.id"])
            assert (raised.value.programme, raised.value.case_manager_id) == ("health-care", "cm-1")
            assert "fhir-cm check" in str(raised.value) and SECRET_NOTE not in str(raised.value)
            assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no ValidationError text
        with pytest.raises(UnreadableCase):
            list_cases(s)  # a caller that did not say it can do without it is not handed a short list
    assert _row(store, "case-1") == before


def test_lists_that_opt_in_leave_it_out_and_name_it(store_with_cases: Store, caplog: pytest.LogCaptureFixture) -> None:
    store = store_with_cases
    make_unreadable(store, "case-1")

    with caplog.at_level(logging.WARNING), store.session(read_only=True) as s:
        answers = []
        for read in (
            lambda skipped: [c.id for c in list_cases(s, skipped=skipped)],
            lambda skipped: [r.case.id for r in list_case_records(s, skipped=skipped)],
            lambda skipped: [r.case.id for r in list_case_records(s, cache=CaseCache(), skipped=skipped)],
            lambda skipped: list(get_case_records(s, ["case-1", "case-2"], skipped=skipped)),
        ):
            skipped: list[UnreadableCase] = []
            answers.append((read(skipped), [u.case_id for u in skipped]))

    assert answers == [(["case-2"], ["case-1"])] * 4
    assert "case-1" in caplog.text and SECRET_NOTE not in caplog.text


def test_the_cache_warming_skips_it(store: Store, make_case: Callable[..., Case]) -> None:
    from fhir_cm.store import save_case

    with store.session() as s:
        for case_id in ("case-1", "case-2", "case-3"):
            save_case(s, make_case(case_id))
    make_unreadable(store, "case-2")
    cache = CaseCache()

    with store.session(read_only=True) as s:
        assert warm_case_cache(s, cache, [CaseStatus.ACTIVE]) == 2
    assert len(cache) == 2
