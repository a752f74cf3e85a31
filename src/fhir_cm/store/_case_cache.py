"""Decoded cases kept per process, by id and revision, for the read paths that serve them.

Reading a case costs far more in decoding its JSON and validating it into a ``Case`` (the domain's
rules on every field) than in the query. The API reads the same cases again and again between two
changes, so the read routes look the revisions up first (a narrow query, no JSON) and decode only the
cases not kept at that revision. A save raises the revision, so a kept case is never served stale:
the key no longer matches and the case is read again.

Kept cases are shared between requests: the readers that use the cache only serialise and filter
them. Anything that changes a case reads it through ``get_case_record`` without the cache, inside the
transaction that saves it. The cache is bounded (least recently used first out); ``size=0`` turns it
off. Each process of ``serve --workers N`` keeps its own.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from fhir_cm.domain import Case

__all__ = ["CaseCache"]


class CaseCache:
    """A bounded, thread-safe map from (case id, revision) to the validated case."""

    def __init__(self, size: int = 2000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[int, Case]] = OrderedDict()

    def get(self, case_id: str, revision: int) -> Case | None:
        """The kept case at exactly this revision, or None."""
        with self._lock:
            kept = self._kept.get(case_id)
            if kept is None or kept[0] != revision:
                return None
            self._kept.move_to_end(case_id)
            return kept[1]

    def put(self, case_id: str, revision: int, case: Case) -> None:
        """Keep ``case`` as the case at ``revision`` (an older revision kept is replaced)."""
        if self.size <= 0:
            return
        with self._lock:
            kept = self._kept.get(case_id)
            if kept is not None and kept[0] > revision:
                return  # a newer revision is already kept: a slow reader must not put an older one back
            self._kept[case_id] = (revision, case)
            self._kept.move_to_end(case_id)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
