"""Maintained aggregates: each case's part of the caseload and the outcome figures, kept by revision.

Recomputing a caseload or the outcomes from every case means decoding every case: seconds for ten
thousand, and it would happen again after every change to any case. Instead each case's *part* — its
manager and contact gap, its discharges, goals and referrals over the period — is kept with the
revision it was computed from. A request reads every visible case's revision (one narrow query, no
JSON), recomputes the parts of the cases whose revision moved (usually none, or the one just saved),
drops those gone, and combines the kept parts: sums, and the values medians are taken over. The
figures are the same as recomputing from every case (``tests/api/test_parts.py`` compares them).

Kept per view (who asks and what: the route's key) and per process, at most ``size`` views. The
ViewCache in front keeps the combined answer until the next change, so this runs once per change. A
view whose parts say whose each case is (the worklist: its case manager, its programme) is one for every
caller (``every_part``): a hundred case managers opening theirs in the morning read the cases once, not
a hundred times, and each takes their own parts from it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from fhir_cm.store import CaseRecord, Store, UnreadableCase, case_revisions, get_case_records

from ._access import can_see, may_see_unreadable, programme_scope
from ._auth import Principal
from ._kept import KeptAnswers

__all__ = ["CaseParts"]

P = TypeVar("P")
_CHUNK = 500  # cases read per query when parts must be recomputed


class CaseParts:
    """Per view, each visible case's part with the revision it was computed from (thread-safe)."""

    def __init__(self, size: int = 32) -> None:
        self._views: KeptAnswers[Hashable, _View] = KeptAnswers(size)

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

        def judged(record: CaseRecord) -> P | None:
            return part(record) if can_see(principal, record.case, today) else None

        def told(bad: UnreadableCase) -> _Unreadable | None:
            return _Unreadable(bad) if may_see_unreadable(principal, bad) else None

        found = self._kept(store, key, filters, judged, told)
        if unreadable is not None:
            unreadable += [case_id for case_id, p in found if isinstance(p, _Unreadable)]
        return [p for _, p in found if p is not None and not isinstance(p, _Unreadable)]

    def every_part(
        self, store: Store, key: Hashable, part: Callable[[CaseRecord], P | None], **filters: Any
    ) -> tuple[list[P], list[UnreadableCase]]:
        """The parts of every stored case the store filters (``list_cases`` keywords) select, whoever asks,
        and the cases this version cannot read: one view for every caller, each choosing their own among
        the parts (a view where the part says whose the case is and who may see it — the worklist's case
        manager, the caseload's readers — so that what a caller may see follows from it). Kept by
        revision as :meth:`parts` keeps them, so the first caller of the day pays for all the others."""

        def told(bad: UnreadableCase) -> _Unreadable:
            return _Unreadable(bad)

        found = self._kept(store, key, filters, part, told)
        unreadable = [p.row for _, p in found if isinstance(p, _Unreadable)]
        return [p for _, p in found if p is not None and not isinstance(p, _Unreadable)], unreadable

    def _kept(
        self,
        store: Store,
        key: Hashable,
        filters: dict[str, Any],
        judged: Callable[[CaseRecord], Any],
        told: Callable[[UnreadableCase], _Unreadable | None],
    ) -> list[tuple[str, Any]]:
        """Each selected case's kept entry, by case id: ``judged(record)`` of a case new or changed since
        (its part, or None), ``told(row)`` of one this version cannot read."""
        view = self._views.get(store, key) or self._views.put(store, key, _View())
        with view.lock:
            kept = view.kept
            with store.session(read_only=True) as session:
                revisions = case_revisions(session, **filters)
                for gone in kept.keys() - revisions.keys():
                    del kept[gone]
                stale = [
                    case_id for case_id, revision in revisions.items() if kept.get(case_id, (None,))[0] != revision
                ]
                for i in range(0, len(stale), _CHUNK):
                    skipped: list[UnreadableCase] = []
                    for case_id, record in get_case_records(
                        session, stale[i : i + _CHUNK], skipped=skipped, cache=store.cases
                    ).items():
                        kept[case_id] = (record.revision, judged(record))
                    for bad in skipped:
                        kept[bad.case_id] = (revisions[bad.case_id], told(bad))
            return [(case_id, entry[1]) for case_id in revisions if (entry := kept.get(case_id)) is not None]


class _View:
    """One view's kept entries, by case id: (revision, part). Its lock is held while the view is brought
    up to date, so callers of one view at once read the cases once (the first; the others then find them
    kept), while another view's callers go on: the first caseload of a day, reading every case, held up
    every worklist and outcomes request of its process when one lock served all views."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[str, tuple[int, Any]] = {}


class _Unreadable:
    """The kept part of a case this version cannot read: no figures, a count (its row, to judge who is told)."""

    def __init__(self, row: UnreadableCase) -> None:
        self.row = row
