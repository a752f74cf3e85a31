"""Views of kept parts (``api._parts.CaseParts``) brought up to date one at a time each, not one at a
time in all: a view reading every case (the first caseload of a day) holds up the callers of that view
only, who then find its parts kept."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from fhir_cm.api import _parts
from fhir_cm.api._parts import CaseParts
from fhir_cm.store import CaseRecord, Store, save_case
from fhir_cm.synthetic import generate_cases

WAIT = 30.0  # seconds: a bound on a wait that should end at once, not a measure


def _stored(store: Store, n: int) -> list[str]:
    with store.session() as s:
        ids = []
        for case in generate_cases(n, seed=11):
            save_case(s, case)
            ids.append(case.id)
    return ids


def test_a_view_being_brought_up_to_date_does_not_hold_up_another(api_store: Store) -> None:
    ids = _stored(api_store, 3)
    parts = CaseParts()
    entered, release = threading.Event(), threading.Event()

    def slow(record: CaseRecord) -> str:
        entered.set()
        release.wait(WAIT)
        return "slow"

    held = threading.Thread(target=parts.every_part, args=(api_store, "slow view", slow))
    held.start()
    try:
        assert entered.wait(WAIT)
        answered: list[list[str]] = []
        other = threading.Thread(
            target=lambda: answered.append(parts.every_part(api_store, "other view", lambda record: record.case.id)[0])
        )
        other.start()
        other.join(WAIT)
        assert not release.is_set()
        assert answered and sorted(answered[0]) == sorted(ids)  # answered while the slow view was held
    finally:
        release.set()
        held.join(WAIT)


class _AnnouncedLock:
    """A view's lock that counts the callers reaching it before they wait for it: the test knows when
    every caller is at the lock, with no sleep standing in for that."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reached = threading.Semaphore(0)

    def __enter__(self) -> None:
        self.reached.release()
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_callers_of_one_view_at_once_read_each_case_once(api_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _stored(api_store, 3)
    locks: list[_AnnouncedLock] = []

    class AnnouncedView(_parts._View):
        def __init__(self) -> None:
            super().__init__()
            self.lock = _AnnouncedLock()  # type: ignore[assignment]
            locks.append(self.lock)  # type: ignore[arg-type]

    monkeypatch.setattr(_parts, "_View", AnnouncedView)
    parts = _parts.CaseParts()
    computed: Counter[str] = Counter()
    entered, release = threading.Event(), threading.Event()

    def part(record: CaseRecord) -> str:
        computed[record.case.id] += 1
        entered.set()
        release.wait(WAIT)
        return record.case.id

    answers: list[list[str]] = []
    callers = [
        threading.Thread(target=lambda: answers.append(parts.every_part(api_store, "one view", part)[0]))
        for _ in range(3)
    ]
    callers[0].start()
    assert entered.wait(WAIT)
    for caller in callers[1:]:
        caller.start()
    [lock] = locks  # one view, so one lock, which all three callers reach while the first is inside
    assert all(lock.reached.acquire(timeout=WAIT) for _ in callers)
    release.set()
    for caller in callers:
        caller.join(WAIT)
    assert len(answers) == 3 and all(sorted(a) == sorted(ids) for a in answers)
    assert computed == Counter(ids)  # once each, by the first caller
