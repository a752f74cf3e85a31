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
(:meth:`ViewCache.showing`). The set of who saw which case, and when first, is the same; the log no
longer grows by the size of the caseload on every refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fhir_cm.store import Store, cases_version

from ._kept import KeptAnswers

__all__ = ["Showing", "ViewCache"]

T = TypeVar("T")


@dataclass(frozen=True)
class Showing(Generic[T]):
    """A result, and the request that showed this same result to this caller before (None: first time)."""

    value: T
    shown_in: str | None
    remember: Callable[[], None]
    """Call once this showing is audited: later showings of the same result point at it."""


class ViewCache:
    """A bounded map from (cases version, key) to a computed result; thread-safe."""

    def __init__(self, size: int = 256) -> None:
        self._kept: KeptAnswers[tuple[Any, Hashable], Any] = KeptAnswers(size)
        self._shown: KeptAnswers[tuple[str, Any, Hashable], str] = KeptAnswers(size * 4)  # → request

    def get(self, store: Store, key: Hashable, compute: Callable[[], T]) -> T:
        """The kept result for ``key`` while no case changed; else ``compute()``, kept for next time.

        The version is read before computing: a case saved during the computation makes the result
        stale at once (it is kept under the older version), never served for the newer one.
        """
        return self._get(store, key, compute)[1]

    def showing(
        self, store: Store, key: Hashable, compute: Callable[[], T], *, viewer: str, request_id: str | None
    ) -> Showing[T]:
        """Like :meth:`get`, and whether ``viewer`` was shown this very result before, in which request."""
        version, value = self._get(store, key, compute)
        shown = (viewer, version, key)
        earlier = self._shown.get(store, shown)

        def remember() -> None:
            if request_id is not None:
                self._shown.put(store, shown, request_id)

        return Showing(value, earlier, remember)

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
