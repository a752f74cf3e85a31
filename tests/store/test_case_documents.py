"""Case documents: the one last imported for each case, kept apart from the case itself."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fhir_cm.domain import Case
from fhir_cm.store import (
    Store,
    StoreError,
    get_case_document,
    get_case_record,
    list_outbox,
    put_case_document,
    save_case,
)


def test_the_last_document_put_is_the_one_kept(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        save_case(s, make_case("case-1"))
        save_case(s, make_case("case-2"))
        put_case_document(s, make_case("case-1", plan_summary="first"))
        put_case_document(s, make_case("case-1", plan_summary="second"))
        put_case_document(s, make_case("case-2", plan_summary="other"))
    with store.session(read_only=True) as s:
        assert get_case_document(s, "case-1") == make_case("case-1", plan_summary="second")
        assert get_case_document(s, "case-2") == make_case("case-2", plan_summary="other")
        assert get_case_document(s, "case-3") is None


def test_a_document_leaves_the_case_and_its_outbox_alone(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        save_case(s, make_case(), enqueue=False)
        put_case_document(s, make_case(plan_summary="from a file"))
    with store.session(read_only=True) as s:
        record = get_case_record(s, "case-1")
        assert record is not None and (record.case, record.revision) == (make_case(), 1)
        assert list_outbox(s) == []


def test_a_document_needs_its_case_stored(store: Store, make_case: Callable[..., Case]) -> None:
    with pytest.raises(StoreError, match="refused the operation"), store.session() as s:
        put_case_document(s, make_case("nowhere"))
