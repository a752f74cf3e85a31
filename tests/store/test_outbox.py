"""The outbox: written with the change, claimed once, leased, coalesced, and safe with several workers."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fhir_cm.domain import Case
from fhir_cm.store import (
    LeaseLost,
    NotFound,
    OutboxItem,
    OutboxStatus,
    Store,
    StoreError,
    claim_outbox,
    mark_pushed,
    mark_pushed_many,
    queue_push,
    mark_push_failed,
    get_case,
    get_case_record,
    list_outbox,
    open_store,
    outbox_counts,
    outbox_statuses,
    purge_outbox,
    put_resources,
    release_claim,
    renew_lease,
    save_case,
)
from tests.store.concurrency import run_together

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
LEASE = 60.0


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def seed(store: Store, make_case: Callable[..., Case], *ids: str) -> None:
    with store.session() as s:
        for case_id in ids:
            save_case(s, make_case(case_id), now=T0)


# --- written with the change --------------------------------------------------------------------


def test_a_saved_change_and_its_outbox_row_commit_together(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        save_case(s, make_case(), now=T0)
    with store.session(read_only=True) as s:
        [item] = list_outbox(s)
    assert (item.case_id, item.revision, item.status, item.attempts) == ("case-1", 1, OutboxStatus.PENDING, 0)
    assert item.created_at == item.available_at == T0


def test_they_roll_back_together_when_the_transaction_fails(store: Store, make_case: Callable[..., Case]) -> None:
    with pytest.raises(StoreError), store.session() as s:
        save_case(s, make_case())
        # A later statement of the same transaction fails in the database: nothing may remain.
        put_resources(s, "no-such-case", [("k", {"resourceType": "Goal"})], fhir_version="R4")
    with store.session(read_only=True) as s:
        assert get_case(s, "case-1") is None
        assert list_outbox(s) == []


def test_saving_without_enqueue_writes_no_outbox_row(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        save_case(s, make_case(), enqueue=False)
    with store.session(read_only=True) as s:
        assert list_outbox(s) == []


def test_enqueue_pushes_an_unchanged_case_again_at_its_revision(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        save_case(s, make_case(), enqueue=False)
        save_case(s, make_case(plan_summary="v2"), enqueue=False)
        queue_push(s, "case-1")
        with pytest.raises(NotFound):
            queue_push(s, "missing")
    with store.session(read_only=True) as s:
        assert [(i.case_id, i.revision) for i in list_outbox(s)] == [("case-1", 2)]


# --- coalescing -----------------------------------------------------------------------------------


def test_changes_waiting_for_a_push_coalesce_into_one_row(store: Store, make_case: Callable[..., Case]) -> None:
    with store.session() as s:
        for n in range(3):
            save_case(s, make_case(plan_summary=f"v{n}"), now=at(n))
    with store.session() as s:
        [item] = list_outbox(s)
        assert (item.revision, item.created_at, item.updated_at) == (3, T0, at(2))
        assert [i.id for i in claim_outbox(s, "w1", now=at(3))] == [item.id]


def test_a_change_during_the_push_sends_the_case_again(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", lease_seconds=LEASE, now=at(1))
    with store.session() as s:
        save_case(s, make_case(plan_summary="edited while pushing"), now=at(2))
        # Still one open row per case: no second worker can take the case while w1 pushes it.
        assert claim_outbox(s, "w2", now=at(3)) == []
    with store.session() as s:
        after = mark_pushed(s, item, now=at(4))
    assert (after.status, after.revision, after.attempts, after.completed_at) == (OutboxStatus.PENDING, 2, 0, None)
    with store.session() as s:
        [again] = claim_outbox(s, "w2", now=at(5))
        assert (again.id, again.revision) == (item.id, 2)
        assert mark_pushed(s, again, now=at(6)).status is OutboxStatus.DONE


def test_completing_with_the_revision_actually_pushed_avoids_a_needless_repush(
    store: Store, make_case: Callable[..., Case]
) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", now=at(1))
        save_case(s, make_case(plan_summary="saved before the pusher read the case"), now=at(2))
    with store.session() as s:
        record = get_case_record(s, "case-1")
        assert record is not None and record.revision == 2
        assert mark_pushed(s, item, pushed_revision=record.revision, now=at(3)).status is OutboxStatus.DONE


def test_after_a_push_is_done_a_new_change_opens_a_new_row(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", now=at(1))
        mark_pushed(s, item, now=at(2))
        save_case(s, make_case(plan_summary="later"), now=at(3))
    with store.session(read_only=True) as s:
        assert [(i.status, i.revision) for i in list_outbox(s)] == [(OutboxStatus.DONE, 1), (OutboxStatus.PENDING, 2)]


# --- claims and leases ---------------------------------------------------------------------------


def test_a_claim_takes_due_rows_oldest_first_and_only_once(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "c", "a", "b")
    with store.session() as s:
        first = claim_outbox(s, "w1", limit=2, lease_seconds=LEASE, now=at(1))
        second = claim_outbox(s, "w2", limit=2, lease_seconds=LEASE, now=at(1))
        third = claim_outbox(s, "w3", limit=2, lease_seconds=LEASE, now=at(1))
    assert [i.case_id for i in first] == ["c", "a"]
    assert [i.case_id for i in second] == ["b"]
    assert third == []
    item = first[0]
    assert (item.status, item.attempts, item.claimed_by) == (OutboxStatus.IN_FLIGHT, 1, "w1")
    assert (item.claimed_at, item.lease_expires_at) == (at(1), at(1 + LEASE))
    assert item.claim_token


def test_an_expired_lease_is_reclaimed_and_the_old_holder_is_shut_out(
    store: Store, make_case: Callable[..., Case]
) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [dead] = claim_outbox(s, "dead-worker", lease_seconds=LEASE, now=at(0))
    with store.session() as s:
        assert claim_outbox(s, "w2", now=at(LEASE - 1)) == []  # lease still held
        [taken] = claim_outbox(s, "w2", lease_seconds=LEASE, now=at(LEASE + 1))
    assert (taken.id, taken.claimed_by, taken.attempts) == (dead.id, "w2", 2)
    for settle in (mark_pushed, lambda s, i, now: mark_push_failed(s, i, "late", now=now), release_claim, renew_lease):
        with pytest.raises(LeaseLost), store.session() as s:
            settle(s, dead, now=at(LEASE + 2))
    with store.session() as s:
        assert mark_pushed(s, taken, now=at(LEASE + 3)).status is OutboxStatus.DONE


def test_renewing_a_lease_keeps_others_off(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", lease_seconds=LEASE, now=at(0))
        item = renew_lease(s, item, LEASE, now=at(LEASE - 1))
        assert item.lease_expires_at == at(2 * LEASE - 1)
        assert claim_outbox(s, "w2", now=at(LEASE + 1)) == []
        assert mark_pushed(s, item, now=at(LEASE + 2)).status is OutboxStatus.DONE


def test_a_retried_failure_waits_for_its_delay(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", now=at(0))
        failed = mark_push_failed(s, item, "HTTP 503 from server", delay_seconds=30, now=at(1))
    assert (failed.status, failed.last_error, failed.available_at) == (
        OutboxStatus.PENDING,
        "HTTP 503 from server",
        at(31),
    )
    with store.session() as s:
        assert claim_outbox(s, "w1", now=at(30)) == []
        [again] = claim_outbox(s, "w1", now=at(31))
        assert again.attempts == 2
        done = mark_pushed(s, again, now=at(32))
    assert (done.status, done.last_error, done.completed_at) == (OutboxStatus.DONE, None, at(32))


def test_a_permanent_failure_stays_failed_until_the_case_changes(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", now=at(0))
        failed = mark_push_failed(s, item, "HTTP 422: CarePlan.status required", retry=False, now=at(1))
        assert failed.status is OutboxStatus.FAILED
        assert claim_outbox(s, "w1", now=at(100)) == []
        save_case(s, make_case(plan_summary="fixed"), now=at(101))
        [fresh] = claim_outbox(s, "w1", now=at(102))
    assert (fresh.id != item.id, fresh.revision, fresh.attempts) == (True, 2, 1)


def test_a_permanent_failure_of_an_outdated_revision_is_retried(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", now=at(0))
        save_case(s, make_case(plan_summary="changed meanwhile"), now=at(1))
        after = mark_push_failed(s, item, "HTTP 422", retry=False, now=at(2))
    assert (after.status, after.revision, after.attempts) == (OutboxStatus.PENDING, 2, 0)


def test_a_later_successful_push_settles_the_cases_earlier_failed_rows(
    store: Store, make_case: Callable[..., Case]
) -> None:
    """The pusher sends a case whole: a later push that succeeds carried what the failed one could not."""
    seed(store, make_case, "case-1", "case-2")
    with store.session() as s:
        first, other = claim_outbox(s, "w1", limit=2, now=at(0))
        mark_push_failed(s, first, "HTTP 422", retry=False, now=at(1))
        mark_push_failed(s, other, "HTTP 422", retry=False, now=at(1))
        assert outbox_statuses(s, ["case-1", "case-2", "case-3"]) == {
            "case-1": {OutboxStatus.FAILED},
            "case-2": {OutboxStatus.FAILED},
        }
        save_case(s, make_case(plan_summary="fixed"), now=at(2))
        assert outbox_statuses(s, ["case-1"]) == {"case-1": {OutboxStatus.FAILED, OutboxStatus.PENDING}}
        [fix] = claim_outbox(s, "w1", now=at(3))
        mark_pushed(s, fix, now=at(4))
        rows = {(i.case_id, i.revision): i for i in list_outbox(s)}
    settled = rows[("case-1", 1)]
    assert (settled.status, settled.last_error, settled.completed_at) == (OutboxStatus.DONE, "HTTP 422", at(4))
    assert rows[("case-2", 1)].status is OutboxStatus.FAILED  # another case's failure stays


def test_pushing_the_unchanged_case_again_settles_its_failed_row(store: Store, make_case: Callable[..., Case]) -> None:
    """What a conflict resolved in the server's favour does: the same revision queued again, and pushed."""
    seed(store, make_case, "case-1")
    with store.session() as s:
        [first] = claim_outbox(s, "w1", now=at(0))
        mark_push_failed(s, first, "HTTP 412: conflict", retry=False, now=at(1))
        queue_push(s, "case-1", now=at(2))
        [again] = claim_outbox(s, "w1", now=at(3))
        assert again.revision == first.revision == 1
        mark_pushed(s, again, now=at(4))
        assert outbox_counts(s)[OutboxStatus.FAILED] == 0
        assert outbox_statuses(s, ["case-1"]) == {}


def _settled_group(
    store: Store, make_case: Callable[..., Case], prefix: str, settle: Callable[..., None]
) -> list[tuple]:
    """Four rows of a push settled by ``settle``: one whose case had failed before, one changed while
    it was pushed, two plain. Their outbox rows afterwards, by case (without the prefix)."""
    ids = [f"{prefix}-{n}" for n in ("failed-before", "changed", "plain", "other")]
    seed(store, make_case, ids[0])
    with store.session() as s:
        [failed] = claim_outbox(s, "w1", now=at(1))
        mark_push_failed(s, failed, "HTTP 422", retry=False, now=at(2))
    seed(store, make_case, *ids[1:])
    with store.session() as s:
        save_case(s, make_case(ids[0], plan_summary="fixed"), now=at(3))
        items = claim_outbox(s, "w1", limit=10, now=at(4))
        save_case(s, make_case(ids[1], plan_summary="edited while pushing"), now=at(5))
    with store.session() as s:
        settle(s, items, at(6))
    with store.session(read_only=True) as s:
        rows = [i for i in list_outbox(s, limit=100) if i.case_id.startswith(prefix)]
    return sorted(
        (i.case_id.removeprefix(prefix), i.revision, i.status, i.attempts, i.completed_at, i.last_error, i.claim_token)
        for i in rows
    )


def test_settling_a_group_at_once_is_settling_each_in_turn(store: Store, make_case: Callable[..., Case]) -> None:
    def each(s: Session, items: list[OutboxItem], now: dt.datetime) -> None:
        for item in items:
            mark_pushed(s, item, now=now)

    one_by_one = _settled_group(store, make_case, "x", each)
    together = _settled_group(store, make_case, "y", lambda s, items, now: mark_pushed_many(s, items, now=now))
    assert together == one_by_one
    statuses = {(case, revision): status for case, revision, status, *_ in together}
    assert statuses == {
        ("-failed-before", 1): OutboxStatus.DONE,  # settled by the later push
        ("-failed-before", 2): OutboxStatus.DONE,
        ("-changed", 2): OutboxStatus.PENDING,  # to be pushed again
        ("-plain", 1): OutboxStatus.DONE,
        ("-other", 1): OutboxStatus.DONE,
    }


def test_a_group_with_a_lost_claim_writes_nothing(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1", "case-2")
    with store.session() as s:
        mine, lost = claim_outbox(s, "w1", limit=2, lease_seconds=LEASE, now=at(0))
    with store.session() as s:
        claim_outbox(s, "w2", lease_seconds=LEASE, now=at(LEASE + 1))  # takes the expired claims over
    with pytest.raises(LeaseLost), store.session() as s:
        mark_pushed_many(s, [mine, lost], now=at(LEASE + 2))
    with store.session(read_only=True) as s:
        assert {i.status for i in list_outbox(s)} == {OutboxStatus.IN_FLIGHT}
        assert {i.claimed_by for i in list_outbox(s)} == {"w2"}


def test_released_claims_return_untried(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "case-1")
    with store.session() as s:
        [item] = claim_outbox(s, "w1", now=at(0))
        back = release_claim(s, item, now=at(1))
        assert (back.status, back.attempts, back.lease_expires_at) == (OutboxStatus.PENDING, 0, None)
        assert [i.id for i in claim_outbox(s, "w2", now=at(2))] == [item.id]


def test_counts_and_purge(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "a", "b", "c")
    with store.session() as s:
        a, b = claim_outbox(s, "w1", limit=2, now=at(0))
        mark_pushed(s, a, now=at(1))
        mark_push_failed(s, b, "gone", retry=False, now=at(1))
        assert outbox_counts(s) == {
            OutboxStatus.PENDING: 1,
            OutboxStatus.IN_FLIGHT: 0,
            OutboxStatus.DONE: 1,
            OutboxStatus.FAILED: 1,
        }
        assert purge_outbox(s, before=at(1)) == 0
        assert purge_outbox(s, before=at(2)) == 1
        assert sorted(i.case_id for i in list_outbox(s)) == ["b", "c"]
        assert [i.case_id for i in list_outbox(s, status=OutboxStatus.FAILED)] == ["b"]
        assert [i.case_id for i in list_outbox(s, case_id="c")] == ["c"]


# --- several workers --------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_claimers_skip_each_others_locked_rows(pg_store_url: str, make_case: Callable[..., Case]) -> None:
    """An uncommitted claim holds row locks; a concurrent claimer passes them by instead of waiting."""
    with open_store(pg_store_url) as store:
        seed(store, make_case, "a", "b", "c", "d")
        with store.session() as first:
            held = claim_outbox(first, "w1", limit=2, now=at(1))
            with store.session() as second:
                # Were the locked rows waited for, this would deadlock (same thread): fail instead.
                second.execute(text("SET LOCAL lock_timeout = '10s'"))
                other = claim_outbox(second, "w2", limit=10, now=at(1))
        assert [i.case_id for i in held] == ["a", "b"]
        assert [i.case_id for i in other] == ["c", "d"]


def test_concurrent_workers_never_claim_a_row_twice(store_url: str, make_case: Callable[..., Case]) -> None:
    """Workers on their own engines (own connections), racing from a barrier, drain the outbox exactly once."""
    cases = [f"case-{n:03d}" for n in range(60)]
    with open_store(store_url) as store:
        seed(store, make_case, *cases)
    workers = 4
    claimed: list[tuple[str, int]] = []

    def work(n: int, go: Callable[[], object]) -> None:
        with open_store(store_url) as mine:
            go()
            while True:
                with mine.session() as s:
                    items = claim_outbox(s, f"w{n}", limit=3)
                if not items:
                    return
                with mine.session() as s:
                    for item in items:
                        claimed.append((item.case_id, n))
                        mark_pushed(s, item)

    run_together(workers, work)
    assert Counter(case_id for case_id, _ in claimed) == Counter(cases)
    with open_store(store_url) as store, store.session(read_only=True) as s:
        assert outbox_counts(s)[OutboxStatus.DONE] == len(cases)
