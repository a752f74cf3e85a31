"""Caseload and outcomes kept until a case changes, instead of recomputed from every case per request.

Both are computed over every case the caller may see: hundreds of milliseconds for a thousand cases,
most of it reading and validating the cases. Supervisors' dashboards ask for them again and again
while the cases rarely change between two asks. So a result is kept per process, keyed by who asks
(role and scope), what they ask (the parameters, the day) and the store's *cases version* (a counter
every transaction writing cases raises, one row read): any save of any case makes every kept
result stale at once, so an answer is never older than the store. The cache is small (LRU); each
process of ``serve --workers N`` keeps its own. Made again after a save, an answer made from the cases'
kept parts (``CaseParts``) is the one made before when the views gave the very same parts again — the
save changed no part of them (:meth:`ViewCache.from_parts`) — so it is not made over every case again.

A view that names cases (the caseload) is audited one row per case it shows. A dashboard polling an
unchanged caseload would write those same rows every few seconds — hundreds per request — so the
cache also remembers who was shown which result: the same caller shown the same result again (no case
changed since, or none of what it shows: the very same answer) is audited as one row naming the request
whose rows list the cases (:meth:`ViewCache.showing`). Shown again *changed* — most saves of a case
change a supervisor's caseload of ten thousand — it is audited against the caller's last showing that listed every case
(:class:`Listed`, :func:`changes`): a row for each case new to it or shown differently, a row for each
case that left it, and one row naming that showing for the rest. The set of who saw which case, and when
first, is the same; the log no longer grows by the size of the caseload on every refresh or change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from fhir_cm.store import Store, cases_version

from ._kept import KeptAnswers

__all__ = ["Changes", "Listed", "Showing", "ViewCache", "changes"]

T = TypeVar("T")


@dataclass(frozen=True)
class Listed:
    """A showing whose audit rows list every case it showed: its request, and what it showed of each case
    (case id → anything that compares equal when the case is shown alike)."""

    request_id: str
    shown: Mapping[str, object]


@dataclass(frozen=True)
class Changes:
    """How a showing differs from a :class:`Listed` one: the cases new to it or shown differently, and
    those it no longer shows."""

    shown: list[str]
    left: list[str]


def changes(base: Listed | None, shown: Mapping[str, object]) -> Changes | None:
    """What a showing (case id → what it shows of the case) changed since ``base``; None when it is to
    be listed in full: no base, or too many changes. Past about √(2n) changes of an n-case view a
    listing of its own costs less than pointing at the base: each later showing repeats the changes since
    the base, so that is where rows per showing, averaged until the next listing, are fewest."""
    if base is None:
        return None
    before, missing = base.shown, object()
    moved = [case_id for case_id, now in shown.items() if before.get(case_id, missing) != now]
    left = [case_id for case_id in before if case_id not in shown]
    if len(moved) + len(left) > max(1, math.isqrt(2 * len(shown))):
        return None
    return Changes(moved, left)


@dataclass(frozen=True)
class Showing(Generic[T]):
    """A result, the request that showed this same result to this caller before (None: first time), and
    the caller's last showing of this view that listed its cases (None: none kept)."""

    value: T
    shown_in: str | None
    base: Listed | None
    remember: Callable[[Listed | None], None]
    """Call once this showing is audited: later showings of the same result point at it; given the
    showing as :class:`Listed` when its rows listed every case, later changed ones are told against it."""


class ViewCache:
    """A bounded map from (cases version, key) to a computed result; thread-safe."""

    def __init__(self, size: int = 256) -> None:
        self._kept: KeptAnswers[tuple[Any, Hashable], Any] = KeptAnswers(size)
        #: (viewer, key) → their last showing and last listing in full, of any version; as many as answers
        #: (each holds one answer at most, as each kept answer does).
        self._latest: KeptAnswers[tuple[str, Hashable], _Latest] = KeptAnswers(size)
        #: key → what ``from_parts`` last made, and of which parts.
        self._made: KeptAnswers[Hashable, _Made] = KeptAnswers(size)

    def get(self, store: Store, key: Hashable, compute: Callable[[], T]) -> T:
        """The kept result for ``key`` while no case changed; else ``compute()``, kept for next time.

        The version is read before computing: a case saved during the computation makes the result
        stale at once (it is kept under the older version), never served for the newer one.
        """
        return self._get(store, key, compute)[1]

    def showing(
        self, store: Store, key: Hashable, compute: Callable[[], T], *, viewer: str, request_id: str | None
    ) -> Showing[T]:
        """Like :meth:`get`, whether ``viewer`` was last shown this very result, in which request, and
        their last showing of ``key`` listed in full, of whatever version. The very result: the same object
        — kept for the store's version, or made from the same parts (:meth:`from_parts`) after a change
        that changed none of them."""
        _, value = self._get(store, key, compute)
        latest = self._latest.get(store, (viewer, key)) or self._latest.put(store, (viewer, key), _Latest())
        last = latest.shown
        earlier = last[1] if last is not None and last[0] is value else None

        def remember(listed: Listed | None) -> None:
            if request_id is not None:
                latest.shown = (value, request_id)
            if listed is not None:
                latest.listed = listed

        return Showing(value, earlier, latest.listed, remember)

    def from_parts(self, store: Store, key: Hashable, parts: tuple[object, ...], build: Callable[[], T]) -> T:
        """``build()``, made from ``parts`` (what ``CaseParts`` views gave), kept for ``key`` for as long as
        those are the very same objects: the views give their last ones again while no part of theirs
        changed, so a save that changed none (a plan summary, for the caseload) is answered with what was
        made, not made again over every case. ``key`` must name all else ``build`` depends on."""
        memo = self._made.get(store, key) or self._made.put(store, key, _Made())
        made = memo.made
        if made is not None and len(made[0]) == len(parts) and all(a is b for a, b in zip(made[0], parts)):
            return cast(T, made[1])
        value = build()
        memo.made = (parts, value)
        return value

    def _get(self, store: Store, key: Hashable, compute: Callable[[], T]) -> tuple[Any, T]:
        with store.lookup() as session:
            version = cases_version(session)
        full = (version, key)
        kept = self._kept.get(store, full)
        if kept is not None:
            return version, kept
        result = compute()
        self._kept.put(store, full, result)
        return version, result


class _Latest:
    """A caller's last showing of a view, and last one listed in full (each replaced by the next; an
    attribute set is atomic)."""

    def __init__(self) -> None:
        #: The result last shown, and the request that showed it first.
        self.shown: tuple[object, str] | None = None
        self.listed: Listed | None = None


class _Made:
    """What :meth:`ViewCache.from_parts` last made for a key, with the parts it was made from."""

    def __init__(self) -> None:
        self.made: tuple[tuple[object, ...], object] | None = None
