"""Decoded cases kept per process, by id and revision, for the read paths that serve them.

Reading a case costs far more in decoding its JSON and validating it into a ``Case`` (the domain's
rules on every field) than in the query. The API reads the same cases again and again between two
changes, so the read routes look the revisions up first (a narrow query, no JSON) and decode only the
cases not kept at that revision. A save raises the revision, so a kept case is never served stale:
the key no longer matches and the case is read again.

A full cache takes in no new case, it only replaces a kept case by its newer revision: with more cases
than it holds and reads spread over all of them, taking each one in would throw another out on every
read, and every decoded case would live just long enough to burden the garbage collector's older
generations. So what it holds is what start-up warmed (the open cases, most recently saved first) and
the cases read while there was room.

Kept cases are shared between requests: the readers that use the cache only serialise and filter
them. Anything that changes a case reads it through ``get_case_record`` without the cache, inside the
transaction that saves it. The cache is bounded; ``size=0`` turns it off. Each process of ``serve --workers N`` keeps its own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from typing import NamedTuple

from fhir_cm.domain import Case

__all__ = ["CaseCache", "Kept"]


class Kept(NamedTuple):
    """A case kept at a revision: the case, the days its resources wrote as a year or a month, and its
    row's times (None when it was kept without them). With the times, a reader that knows the case's
    revision (read a statement before, in the same transaction) makes its record from what is kept
    without asking the table again."""

    case: Case
    written: dict[str, str]
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class CaseCache:
    """A bounded, thread-safe map from case id to the validated case at a revision (with the days its
    resources wrote as a year or a month, stored beside it: ``CaseRecord.dates_as_written``)."""

    def __init__(self, size: int = 2000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[int, Kept]] = {}

    def get(self, case_id: str, revision: int) -> Case | None:
        """The kept case at exactly this revision, or None."""
        kept = self.get_kept(case_id, revision)
        return None if kept is None else kept.case

    def get_kept(self, case_id: str, revision: int) -> Kept | None:
        """The kept case at exactly this revision, with its dates as written and times, or None."""
        with self._lock:
            kept = self._kept.get(case_id)
            if kept is None or kept[0] != revision:
                return None
            return kept[1]

    def put(
        self,
        case_id: str,
        revision: int,
        case: Case,
        written: Mapping[str, str] | None = None,
        *,
        created_at: dt.datetime | None = None,
        updated_at: dt.datetime | None = None,
    ) -> None:
        """Keep ``case`` as the case at ``revision``: in place of an older revision kept, or as a new
        entry while there is room (see the module docstring)."""
        if self.size <= 0:
            return
        with self._lock:
            kept = self._kept.get(case_id)
            if kept is not None and kept[0] > revision:
                return  # a newer revision is already kept: a slow reader must not put an older one back
            if kept is None and len(self._kept) >= self.size:
                return
            self._kept[case_id] = (revision, Kept(case, dict(written or {}), created_at, updated_at))

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
