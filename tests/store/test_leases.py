"""Lease holders, takeover of a dead holder's rows, and renewal of many leases — on both backends.

The outbox basics (claims, expiry, tokens) are in ``test_outbox``; this is what makes a re-run after
a ``kill -9`` finish the job at once, and a slow push keep its rows.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from fhir_cm.domain import Case
from fhir_cm.store import (
    HolderState,
    LeaseHolder,
    LeaseLost,
    OutboxStatus,
    Store,
    claim_outbox,
    mark_pushed,
    held_leases,
    holder_state,
    list_outbox,
    renew_leases,
    save_case,
    take_over_dead_leases,
)

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
LEASE = 60.0
ME = LeaseHolder(host="here", pid=100, process="boot/pid:[1]/500")
DEAD = LeaseHolder(host="here", pid=200, process="boot/pid:[1]/600")
LIVE = LeaseHolder(host="here", pid=300, process="boot/pid:[1]/700")
ELSEWHERE = LeaseHolder(host="there", pid=200, process="boot2/pid:[1]/600")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def seed(store: Store, make_case: Callable[..., Case], *ids: str) -> None:
    with store.session() as s:
        for case_id in ids:
            save_case(s, make_case(case_id), now=T0)


def judge(holder: LeaseHolder, me: LeaseHolder) -> HolderState:
    """Deterministic liveness for the store tests: only ``DEAD`` is dead (real processes: below)."""
    assert me == ME
    assert holder.host == me.host, "a holder of another host must not even be judged"
    return HolderState.DEAD if holder == DEAD else HolderState.ALIVE


# --- holders are recorded ------------------------------------------------------------------------


def test_a_claim_records_its_holder(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "a", "b")
    with store.session() as s:
        [with_holder] = claim_outbox(s, "w1", limit=1, holder=ME, now=at(0))
        [without] = claim_outbox(s, "w2", limit=1, now=at(0))
    with store.session(read_only=True) as s:
        stored = {i.case_id: i for i in list_outbox(s)}
    assert with_holder.holder == stored["a"].holder == ME
    assert without.holder is None and stored["b"].holder is None


# --- takeover ------------------------------------------------------------------------------------


def test_a_dead_holders_rows_are_taken_over_at_once_and_claimed_in_the_same_transaction(
    store: Store, make_case: Callable[..., Case]
) -> None:
    seed(store, make_case, "a", "b", "c")
    with store.session() as s:
        dead = claim_outbox(s, "dead", limit=2, lease_seconds=LEASE, holder=DEAD, now=at(0))
    with store.session() as s:
        assert [i.case_id for i in claim_outbox(s, "me", limit=10, holder=ME, now=at(1))] == ["c"]
    with store.session() as s:
        taken = take_over_dead_leases(s, ME, judge=judge, now=at(2))  # long before the lease ends
        again = claim_outbox(s, "me", limit=10, holder=ME, now=at(2))
    assert [(i.case_id, i.claimed_by, i.holder) for i in taken] == [("a", "dead", DEAD), ("b", "dead", DEAD)]
    assert [(i.case_id, i.claimed_by, i.attempts) for i in again] == [("a", "me", 2), ("b", "me", 2)]
    for old in dead:  # the dead claim cannot settle what is no longer its
        with pytest.raises(LeaseLost), store.session() as s:
            mark_pushed(s, old, now=at(3))


def test_live_unjudged_and_other_host_holders_keep_their_rows(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "live", "mine", "elsewhere", "anonymous")
    with store.session() as s:
        claim_outbox(s, "live", limit=1, holder=LIVE, now=at(0))
        claim_outbox(s, "me", limit=1, holder=ME, now=at(0))
        claim_outbox(s, "far", limit=1, holder=ELSEWHERE, now=at(0))
        claim_outbox(s, "old-version", limit=1, now=at(0))  # no holder recorded
    with store.session() as s:
        assert take_over_dead_leases(s, ME, judge=judge, now=at(1)) == []
        assert claim_outbox(s, "me", holder=ME, now=at(1)) == []
    with store.session(read_only=True) as s:
        assert {i.case_id: i.claimed_by for i in held_leases(s, now=at(1))} == {
            "live": "live",
            "mine": "me",
            "elsewhere": "far",
            "anonymous": "old-version",
        }


def test_a_takeover_revokes_each_claim_once(store: Store, make_case: Callable[..., Case]) -> None:
    """Two claimers taking over together, or one that sees a row already re-claimed, revoke nothing twice."""
    seed(store, make_case, "a")
    with store.session() as s:
        claim_outbox(s, "dead", holder=DEAD, lease_seconds=LEASE, now=at(0))
    with store.session() as s:
        assert len(take_over_dead_leases(s, ME, judge=judge, now=at(1))) == 1
        [mine] = claim_outbox(s, "me", holder=ME, lease_seconds=LEASE, now=at(1))
    with store.session() as s:
        assert take_over_dead_leases(s, ME, judge=judge, now=at(2)) == []
    with store.session(read_only=True) as s:
        [row] = list_outbox(s)
    assert (row.status, row.claim_token, row.claimed_by) == (OutboxStatus.IN_FLIGHT, mine.claim_token, "me")


def test_expired_leases_are_left_to_the_ordinary_claim(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "a")
    with store.session() as s:
        claim_outbox(s, "dead", holder=DEAD, lease_seconds=LEASE, now=at(0))
    with store.session() as s:
        assert take_over_dead_leases(s, ME, judge=judge, now=at(LEASE + 1)) == []
        assert [i.claimed_by for i in claim_outbox(s, "me", holder=ME, now=at(LEASE + 1))] == ["me"]


# --- renewal -------------------------------------------------------------------------------------


def test_renewing_many_leases_keeps_others_off_and_names_the_lost_ones(
    store: Store, make_case: Callable[..., Case]
) -> None:
    seed(store, make_case, "a", "b", "c")
    with store.session() as s:
        a, b, c = claim_outbox(s, "w1", limit=3, lease_seconds=LEASE, now=at(0))
        mark_pushed(s, c, now=at(1))
    with store.session() as s:  # b's lease ran out and w2 took it; a's ran out too, but nobody took it
        [stolen] = claim_outbox(s, "w2", limit=1, lease_seconds=LEASE, now=at(LEASE + 1))
    assert stolen.id == a.id
    with store.session() as s:
        renewed = renew_leases(s, [a, b, c], LEASE, now=at(LEASE + 2))
    assert [(i.id, i.lease_expires_at) for i in renewed] == [(b.id, at(2 * LEASE + 2))]
    with store.session() as s:
        assert claim_outbox(s, "w3", now=at(LEASE + 3)) == []
        assert mark_pushed(s, b, now=at(LEASE + 4)).status is OutboxStatus.DONE


def test_held_leases_and_rows_of_some_cases(store: Store, make_case: Callable[..., Case]) -> None:
    seed(store, make_case, "a", "b", "c")
    with store.session() as s:
        _, b = claim_outbox(s, "w1", limit=2, lease_seconds=10, now=at(0))
        mark_pushed(s, b, now=at(1))
    with store.session(read_only=True) as s:
        assert [i.case_id for i in held_leases(s, now=at(5))] == ["a"]
        assert held_leases(s, now=at(11)) == []
        assert held_leases(s, case_ids=["b", "c"], now=at(5)) == []
        assert held_leases(s, case_ids=[], now=at(5)) == []
        assert [i.case_id for i in list_outbox(s, case_ids=["c", "a", "x"])] == ["a", "c"]
        assert [i.case_id for i in list_outbox(s, status=OutboxStatus.DONE, case_ids=["a", "b"])] == ["b"]


# --- liveness of real processes ------------------------------------------------------------------

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@linux_only
def test_a_live_process_of_this_host_is_alive_and_this_process_is_itself(child: subprocess.Popen[bytes]) -> None:
    me = LeaseHolder.current()
    holder = LeaseHolder.of(child.pid)
    assert holder.process is not None and holder.space == me.space
    assert holder_state(holder, me) is HolderState.ALIVE
    assert holder_state(me, me) is HolderState.ALIVE


@linux_only
def test_a_killed_process_is_dead_reaped_or_not(child: subprocess.Popen[bytes]) -> None:
    holder = LeaseHolder.of(child.pid)
    os.kill(child.pid, signal.SIGKILL)
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
    assert holder_state(holder) is HolderState.DEAD
    child.wait()
    assert holder_state(holder) is HolderState.DEAD


@linux_only
def test_a_reused_pid_is_not_the_holder(child: subprocess.Popen[bytes]) -> None:
    """Same pid, another start time: the process that held the lease is gone."""
    live = LeaseHolder.of(child.pid)
    assert live.space is not None and live.started is not None
    earlier = live.model_copy(update={"process": f"{live.space}/{int(live.started) - 1}"})
    assert holder_state(earlier) is HolderState.DEAD


def test_what_this_process_cannot_see_is_unknown() -> None:
    me = LeaseHolder.current()
    other_host = me.model_copy(update={"host": me.host + ".elsewhere", "pid": 2**22 + 1})
    other_container = me.model_copy(update={"pid": 2**22 + 1, "process": "another-boot/pid:[9]/1"})
    assert holder_state(other_host, me) is HolderState.UNKNOWN
    assert holder_state(None, me) is HolderState.UNKNOWN
    if me.process is not None:
        assert holder_state(other_container, me) is HolderState.UNKNOWN
