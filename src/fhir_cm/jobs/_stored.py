"""Every stored case, read once in chunks, for the command line's views over the whole store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Unpack

from fhir_cm.store import CaseFilters, CaseRecord, Store, UnreadableCase, case_revisions, get_case_records

__all__ = ["every_record"]

_CHUNK = 500  # cases decoded per query


def every_record(store: Store, skipped: list[UnreadableCase], **filters: Unpack[CaseFilters]) -> Iterator[CaseRecord]:
    """The stored cases the filters select, in id order, a chunk decoded at a time (ten thousand cases are
    not held decoded at once); those this version cannot read go to ``skipped``. The API keeps its
    parts by revision instead (``api._parts``); a command runs once, so it reads each case once."""
    with store.session(read_only=True) as session:
        ids = list(case_revisions(session, **filters))
        for i in range(0, len(ids), _CHUNK):
            yield from get_case_records(session, ids[i : i + _CHUNK], skipped=skipped).values()
