"""What a process keeps of one store's answers: a bounded map, least recently used out.

The read routes keep answers computed from the store (a case's JSON, a caseload, each case's part of
one) in the process that serves them. What is kept holds for the store it was read from only: the
tests open many stores in one process, and an app given another store must not answer from the last
one's. So the map remembers its store (weakly: it does not keep a closed store alive) and empties
itself when asked about another.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from fhir_cm.store import Store

__all__ = ["KeptAnswers"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class KeptAnswers(Generic[K, V]):
    """At most ``size`` values by key, for one store at a time; thread-safe, each call on its own."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._values: OrderedDict[K, V] = OrderedDict()
        self._store: weakref.ref[Store] | None = None

    def get(self, store: Store, key: K) -> V | None:
        """The value kept for ``key`` from ``store`` (now the most recently used), or None."""
        with self._lock:
            self._bind(store)
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, store: Store, key: K, value: V) -> V:
        """Keep ``value`` for ``key`` from ``store``, the least recently used going past ``size``; a
        value kept already for the key stays (``setdefault``: two requests that computed the same
        answer at once keep the first). Returns the value kept."""
        with self._lock:
            self._bind(store)
            if self.size <= 0:
                return value
            kept = self._values.setdefault(key, value)
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
            return kept

    def _bind(self, store: Store) -> None:
        if self._store is None or self._store() is not store:  # another store: nothing kept applies
            self._values.clear()
            self._store = weakref.ref(store)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)
