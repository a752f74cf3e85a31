"""What a process keeps of a store's answers (``api._kept``): bounded, newest used kept, one store at a time."""

from __future__ import annotations

import gc
import weakref

from fhir_cm.api._kept import KeptAnswers
from fhir_cm.store import open_store


def test_the_least_recently_used_goes_and_the_first_value_kept_stays() -> None:
    with open_store("sqlite://") as store:
        kept: KeptAnswers[str, int] = KeptAnswers(2)
        assert kept.put(store, "a", 1) == 1
        kept.put(store, "b", 2)
        assert kept.get(store, "a") == 1  # a is now the newest used
        kept.put(store, "c", 3)  # so b goes
        assert (kept.get(store, "a"), kept.get(store, "b"), kept.get(store, "c")) == (1, None, 3)
        assert kept.put(store, "a", 10) == 1  # two answers made at once: the first kept is the one given
        assert len(kept) == 2


def test_another_store_empties_it_and_a_closed_one_is_not_kept_alive() -> None:
    kept: KeptAnswers[str, int] = KeptAnswers(4)
    with open_store("sqlite://") as first:
        kept.put(first, "a", 1)
        gone = weakref.ref(first)
        with open_store("sqlite://") as second:
            assert kept.get(second, "a") is None
            assert kept.get(first, "a") is None  # emptied for the second store: not back for the first
    del first
    gc.collect()
    assert gone() is None


def test_a_size_of_nothing_keeps_nothing() -> None:
    with open_store("sqlite://") as store:
        kept: KeptAnswers[str, int] = KeptAnswers(0)
        assert kept.put(store, "a", 1) == 1
        assert kept.get(store, "a") is None and len(kept) == 0
