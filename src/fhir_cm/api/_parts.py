"""Maintained aggregates: each case's part of the caseload and the outcome figures, kept by revision.

Recomputing a caseload or the outcomes from every case means decoding every case: seconds for ten
thousand, and it would happen again after every change to any case. Instead each case's *part* — its
manager and contact gap, its discharges, goals and referrals over the period — is kept with the
revision it was computed from. A request reads every visible case's revision (one narrow query, no
JSON), recomputes the parts of the cases whose revision moved (usually none, or the one just saved),
drops those gone, and combines the kept parts: sums, and the values medians are taken over. The
figures are the same as recomputing from every case (``tests/api/test_parts.py`` compares them).

Kept per view (who asks and what: the route's key) and per process, at most ``size`` views. The
ViewCache in front keeps the combined answer until the next change, so this runs once per change.
"""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from fhir_cm.store import CaseRecord, Store, UnreadableCase, case_revisions, get_case_records

from ._access import can_see, may_see_unreadable, programme_scope
from ._auth import Principal

__all__ = ["CaseParts"]

P = TypeVar("P")
_CHUNK = 500  # cases read per query when parts must be recomputed


class CaseParts:
    """Per view, each visible case's part with the revision it was computed from (thread-safe)."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._views: OrderedDict[Hashable, dict[str, tuple[int, Any]]] = OrderedDict()
        self._store: weakref.ref[Store] | None = None  # the store the kept parts were computed from

    def parts(
        self,
        store: Store,
        principal: Principal,
        today: dt.date,
        key: Hashable,
        part: Callable[[CaseRecord], P | None],
        unreadable: list[str] | None = None,
        **filters: Any,
    ) -> list[P]:
        """The parts of every case ``principal`` may see among those the store filters (``list_cases``
        keywords) select, by case id; ``part`` is called only for cases new or changed since, with the
        stored case (its ``dates_as_written`` read in the same row: no resource is read).

        A case this version cannot read has no part; its id goes to ``unreadable`` if the principal
        could see it (``may_see_unreadable``). It is kept as such by revision, so it is not read again
        until it changes."""
        scope = programme_scope(principal)
        if scope is not None:
            if filters.get("programme") not in (None, scope):
                return []
            filters["programme"] = scope
        with self._lock:
            if self._store is None or self._store() is not store:  # another store: nothing kept applies
                self._views.clear()
                self._store = weakref.ref(store)
            kept = self._views.pop(key, None) or {}
            self._views[key] = kept
            while len(self._views) > self._size:
                self._views.popitem(last=False)
            with store.session(read_only=True) as session:
                revisions = case_revisions(session, **filters)
                for gone in kept.keys() - revisions.keys():
                    del kept[gone]
                stale = [
                    case_id for case_id, revision in revisions.items() if kept.get(case_id, (None,))[0] != revision
                ]
                for i in range(0, len(stale), _CHUNK):
                    skipped: list[UnreadableCase] = []
                    for case_id, record in get_case_records(session, stale[i : i + _CHUNK], skipped=skipped).items():
                        visible = can_see(principal, record.case, today)
                        kept[case_id] = (record.revision, part(record) if visible else None)
                    for bad in skipped:
                        told = may_see_unreadable(principal, bad)
                        kept[bad.case_id] = (revisions[bad.case_id], _Unreadable() if told else None)
            found = [(case_id, entry[1]) for case_id in revisions if (entry := kept.get(case_id)) is not None]
            if unreadable is not None:
                unreadable += [case_id for case_id, p in found if isinstance(p, _Unreadable)]
            return [p for _, p in found if p is not None and not isinstance(p, _Unreadable)]


class _Unreadable:
    """The kept part of a case this version cannot read, that the viewer could see: no figures, a count."""
