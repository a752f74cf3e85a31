"""Maintained aggregates: each case's part of the caseload and the outcome figures, kept by revision.

Recomputing a caseload or the outcomes from every case means decoding every case: seconds for ten
thousand, and it would happen again after every change to any case. Instead each case's *part* — its
manager and contact gap, its discharges, goals and referrals over the period — is kept with the
revision it was computed from. A request reads the revisions of the cases saved since the view's last
look (the first, every selected case's: one narrow query, no JSON), recomputes the parts of the cases
whose revision moved (usually none, or the one just saved), drops those no longer selected, and
combines the kept parts: sums, and the values medians are taken over. The
figures are the same as recomputing from every case (``tests/api/test_parts.py`` compares them).

Kept per view (what is asked: the day, the period) and per process, at most ``size`` views; the
ViewCache in front keeps each caller's combined answer until the next change, so this runs once per
change. A view is one for every caller (``every_part``): its parts say whose each case is (the
worklist's case manager and programme), or are kept with what judges who may see the case (the
caseload's and the outcomes', ``for_everyone``: its programme and readers), and each caller takes
their own from it — a hundred case managers opening theirs in the morning read the cases once, not a
hundred times, and the start-up can compute a day's views before anyone asks.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from fhir_cm.domain import ProgrammeType
from fhir_cm.store import (
    CaseRecord,
    Store,
    UnreadableCase,
    case_revisions,
    cases_changed_since,
    changes_seen,
    get_case_records,
    read_since,
)

from ._access import can_see_kept, may_see_unreadable, readers
from ._auth import Principal
from ._kept import KeptAnswers

__all__ = ["CaseParts", "Shared", "seen", "seen_unreadable"]

P = TypeVar("P")
Q = TypeVar("Q")
_CHUNK = 500  # cases read per query when parts must be recomputed
#: Past this many cases changed since a view's last look, it reads every selected case's revision.
_BY_ID_UP_TO = _CHUNK


class CaseParts:
    """Per view, each case's part with the revision it was computed from (thread-safe)."""

    def __init__(self, size: int = 32) -> None:
        self._views: KeptAnswers[Hashable, _View] = KeptAnswers(size)

    def every_part(
        self, store: Store, key: Hashable, part: Callable[[CaseRecord], P | None], **filters: Any
    ) -> tuple[Sequence[P], Sequence[UnreadableCase]]:
        """The parts of every stored case the store filters (``list_cases`` keywords) select, whoever asks,
        and the cases this version cannot read: one view for every caller, each choosing their own among
        the parts (the part says whose the case is and who may see it — the worklist's case manager, the
        caseload's readers — so that what a caller may see follows from it). ``part`` is called only for
        cases new or changed since, with the stored case (its ``dates_as_written`` read in the same row:
        no resource is read), so the first caller of the day pays for all the others."""
        return self._kept(store, key, filters, part)

    def for_everyone(
        self,
        store: Store,
        today: dt.date,
        key: Hashable,
        part: Callable[[CaseRecord], P | None],
        programme: ProgrammeType | None = None,
        **filters: Any,
    ) -> tuple[Sequence[Shared[P]], Sequence[UnreadableCase]]:
        """:meth:`every_part`, each part kept with what judges who may see its case on ``today`` (its
        programme, its :func:`readers`): a view for every caller of a per-caller figure (the caseload,
        the outcomes), each taking their own with :func:`seen` and :func:`seen_unreadable`.

        With ``programme`` (asked for, or a supervisor key's only one), the parts of every programme if
        that view is kept already (the start-up's, or another caller's: nothing to go through again),
        else a view of that programme's cases alone — a first caller of one programme does not go
        through the others'. The caller takes its programme's parts either way (``seen``)."""

        def kept(record: CaseRecord) -> Shared[P] | None:
            found = part(record)
            return None if found is None else Shared(found, record.case.programme, readers(record.case, today))

        if programme is not None and self._views.get(store, (key, None)) is None:
            return self.every_part(store, (key, programme), kept, programme=programme, **filters)
        return self.every_part(store, (key, None), kept, **filters)

    def derived(
        self, store: Store, key: Hashable, every: Sequence[Shared[P]], part: Callable[[P], Q]
    ) -> Sequence[Shared[Q]]:
        """``part`` of each of ``every`` (parts kept in another view), kept in view ``key`` for as long as
        the part it came from is kept: a view of parts taken from parts (a period's outcomes from each
        case's outcome timeline) costs ``part`` only for the cases whose part in ``every`` is new, and
        no case is read."""
        view = self._views.get(store, key) or self._views.put(store, key, _View())
        with view.lock:
            if view.derived is not None and view.derived[0] is every:  # the very parts of last time: the same
                return view.derived[1]
            kept = view.kept
            # Keyed by the kept part's identity: a case's part is a new object whenever it is worked out again.
            fresh: dict[Hashable, tuple[Any, Any]] = {}
            for s in every:
                hit = kept.get(id(s))
                fresh[id(s)] = hit if hit is not None and hit[0] is s else (s, s.map(part))
            view.kept = fresh
            derived = tuple(d for _, d in fresh.values())
            view.derived = (every, derived)
            return derived

    def _kept(
        self,
        store: Store,
        key: Hashable,
        filters: dict[str, Any],
        part: Callable[[CaseRecord], Any],
    ) -> tuple[tuple[Any, ...], tuple[UnreadableCase, ...]]:
        """The selected cases' parts, in case id order — ``part(record)`` of a case new or changed since,
        kept by revision, None dropped — and the cases this version cannot read.

        A case this version cannot read is kept as such by revision, so it is not read again until it
        changes. A case whose part, worked out again, equals the one kept keeps the one kept; while no
        part changed and no case came or went, the lists of the last look are given again, the very same
        tuples: each pass over ten thousand kept parts cost
        several milliseconds after every change, most of them in reaching parts spread over memory, and a
        save that changes no case's part of a view (a plan summary, for the caseload) now costs the view
        the cases saved. A caller may keep what it worked out of them for as long as they are the same
        (``ViewCache.from_parts``)."""
        view = self._views.get(store, key) or self._views.put(store, key, _View())
        with view.lock:
            kept = view.kept
            with store.session(read_only=True) as session:
                revisions, seen = _revisions(session, view, filters)
                stale = [
                    case_id for case_id, revision in revisions.items() if kept.get(case_id, (None,))[0] != revision
                ]
                for i in range(0, len(stale), _CHUNK):
                    skipped: list[UnreadableCase] = []
                    for case_id, record in get_case_records(
                        session, stale[i : i + _CHUNK], skipped=skipped, cache=store.cases, revisions=revisions
                    ).items():
                        view.keep(case_id, record.revision, part(record))
                    for bad in skipped:
                        view.keep(bad.case_id, revisions[bad.case_id], _Unreadable(bad))
            view.seen = seen  # only now: a look that failed part-way is looked at again whole
            return view.parts()


def _revisions(session: Session, view: _View, filters: dict[str, Any]) -> tuple[dict[str, int], int]:
    """The revisions of the selected cases that may have changed since the view's last look, the view's
    cases (``order``) and kept entries brought in line with the selection: the first time, every
    selected case's; then only those of the cases saved since (``cases_changed_since``), a case no
    longer selected (closed, moved to another programme) dropped. Reading every selected case's
    revision, and comparing them all, took each view 20–30 ms of each change on 10,000 cases. Returned
    with where the order of commits stood before they were read (``changes_seen``)."""
    seen = changes_seen(session)
    # Never read, or the store's counters were reset: read in full; and so past many changes (a pull
    # merging thousands of cases), where one query over the selection costs less than asking by id.
    since = read_since(view.seen, seen)
    touched = None if since is None else set(cases_changed_since(session, since))
    if touched is None or len(touched) > _BY_ID_UP_TO:
        revisions = case_revisions(session, **filters)
        for gone in view.kept.keys() - revisions.keys():
            del view.kept[gone]
        view.order, view.members = list(revisions), set(revisions)
        view.changed()
    else:
        if "ids" in filters:
            touched &= set(filters["ids"])
        revisions = case_revisions(session, **{**filters, "ids": sorted(touched)}) if touched else {}
        for case_id in touched - revisions.keys():
            if view.kept.pop(case_id, None) is not None:
                view.changed()
            if case_id in view.members:
                view.members.discard(case_id)
                del view.order[bisect.bisect_left(view.order, case_id)]
                view.changed()
        for case_id in revisions.keys() - view.members:
            view.members.add(case_id)
            bisect.insort(view.order, case_id)
            view.changed()
    return revisions, seen


@dataclass(frozen=True, slots=True)
class Shared(Generic[P]):
    """A case's part in a view for every caller, with what judges who may see the case: its programme
    now and its readers on the view's day (``CaseParts.for_everyone``)."""

    part: P
    programme: ProgrammeType
    seen_by: frozenset[str]

    def map(self, part: Callable[[P], Q]) -> Shared[Q]:
        """``part`` of this part, seen by the same callers."""
        return Shared(part(self.part), self.programme, self.seen_by)


def seen(principal: Principal, every: Iterable[Shared[P]], programme: ProgrammeType | None = None) -> list[P]:
    """The parts of the cases ``principal`` may see (``can_see``, judged from what was kept), of
    ``programme`` if one is asked for."""
    return [
        s.part for s in every if programme in (None, s.programme) and can_see_kept(principal, s.programme, s.seen_by)
    ]


def seen_unreadable(
    principal: Principal, rows: Iterable[UnreadableCase], programme: ProgrammeType | None = None
) -> list[UnreadableCase]:
    """The cases this version cannot read that ``principal`` may be told of, of ``programme`` if asked for."""
    return [
        row
        for row in rows
        if (programme is None or row.programme == programme.value) and may_see_unreadable(principal, row)
    ]


class _View:
    """One view's kept entries, by case id: (revision, part). Its lock is held while the view is brought
    up to date, so callers of one view at once read the cases once (the first; the others then find them
    kept), while another view's callers go on: the first caseload of a day, reading every case, held up
    every worklist and outcomes request of its process when one lock served all views."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[Hashable, tuple[Any, Any]] = {}
        #: The ids of the cases the view selects, in id order (``order``, and as a set, ``members``).
        self.order: list[str] = []
        self.members: set[str] = set()
        #: ``changes_seen`` at the last look (None: never looked).
        self.seen: int | None = None
        #: What the last look gave (the parts, the unreadable cases); None once a part changed or a case
        #: came or went since.
        self.answer: tuple[tuple[Any, ...], tuple[UnreadableCase, ...]] | None = None
        #: A view derived from another's parts: what it was last made from, and what it made.
        self.derived: tuple[object, tuple[Any, ...]] | None = None

    def changed(self) -> None:
        """A part changed, or a case came or went: the view's lists are made again at its next look."""
        self.answer = None

    def keep(self, case_id: str, revision: int, part: Any) -> None:
        """Keep ``part`` of the case at ``revision``; the part kept stays when the new one equals it (a
        save that changes nothing the view shows leaves the view as it was)."""
        old = self.kept.get(case_id)
        if old is not None and _same(old[1], part):
            part = old[1]
        else:
            self.changed()
        self.kept[case_id] = (revision, part)

    def parts(self) -> tuple[tuple[Any, ...], tuple[UnreadableCase, ...]]:
        """The parts of the view's cases in id order (None dropped) and its unreadable cases: the very
        same tuples as the last look's while nothing changed."""
        if self.answer is None:
            found = [entry[1] for case_id in self.order if (entry := self.kept.get(case_id)) is not None]
            self.answer = (
                tuple(p for p in found if p is not None and not isinstance(p, _Unreadable)),
                tuple(p.row for p in found if isinstance(p, _Unreadable)),
            )
        return self.answer


def _same(kept: Any, new: Any) -> bool:
    """Whether a case's part worked out again is the one kept (a part equal in every figure)."""
    return kept is new or (type(kept) is type(new) and not isinstance(new, _Unreadable) and kept == new)


class _Unreadable:
    """The kept part of a case this version cannot read: no figures, a count (its row, to judge who is told)."""

    def __init__(self, row: UnreadableCase) -> None:
        self.row = row
