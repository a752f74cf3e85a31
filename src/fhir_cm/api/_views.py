"""Caseload and outcomes kept until a case changes, instead of recomputed from every case per request.

Both are computed over every case the caller may see: hundreds of milliseconds for a thousand cases,
most of it reading and validating the cases. Supervisors' dashboards ask for them again and again
while the cases rarely change between two asks. So a result is kept per process, keyed by who asks
(role and scope), what they ask (the parameters, the day) and the store's *cases version* (a counter
every transaction writing cases raises, one row read): any save of any case makes every kept
result stale at once, so an answer is never older than the store. The cache is small (LRU); each
process of ``serve --workers N`` keeps its own.

A view that names cases (the caseload) is audited one row per case it shows. A dashboard polling an
unchanged caseload would write those same rows every few seconds — hundreds per request — so the
cache also remembers who was shown which result: the same caller shown the same result again (no case
changed since) is audited as one row naming the request whose rows list the cases
(:meth:`ViewCache.showing`). Shown again *changed* — any save of any case changes a supervisor's
caseload of ten thousand — it is audited against the caller's last showing that listed every case
(:class:`Listed`, :func:`changes`): a row for each case new to it or shown differently, a row for each
case that left it, and one row naming that showing for the rest. The set of who saw which case, and when
first, is the same; the log no longer grows by the size of the caseload on every refresh or change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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
        self._shown: KeptAnswers[tuple[str, Any, Hashable], str] = KeptAnswers(size * 4)  # → request
        #: (viewer, key) → their last showing listed in full; a view's every version shares it. Fewer than
        #: answers: each may hold what a supervisor's caseload shows of ten thousand cases.
        self._listed: KeptAnswers[tuple[str, Hashable], _Latest] = KeptAnswers(max(1, size // 4))

    def get(self, store: Store, key: Hashable, compute: Callable[[], T]) -> T:
        """The kept result for ``key`` while no case changed; else ``compute()``, kept for next time.

        The version is read before computing: a case saved during the computation makes the result
        stale at once (it is kept under the older version), never served for the newer one.
        """
        return self._get(store, key, compute)[1]

    def showing(
        self, store: Store, key: Hashable, compute: Callable[[], T], *, viewer: str, request_id: str | None
    ) -> Showing[T]:
        """Like :meth:`get`, whether ``viewer`` was shown this very result before, in which request, and
        their last showing of ``key`` listed in full, of whatever version."""
        version, value = self._get(store, key, compute)
        shown = (viewer, version, key)
        earlier = self._shown.get(store, shown)
        latest = self._listed.get(store, (viewer, key)) or self._listed.put(store, (viewer, key), _Latest())

        def remember(listed: Listed | None) -> None:
            if request_id is not None:
                self._shown.put(store, shown, request_id)
            if listed is not None:
                latest.listed = listed

        return Showing(value, earlier, latest.listed, remember)

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
    """A caller's last showing of a view listed in full (replaced by each new one; an attribute set is atomic)."""

    def __init__(self) -> None:
        self.listed: Listed | None = None
