"""Where asked-for cases stand after a push: pushed, held (by whom, until when), failed, waiting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_cm.store import Store, claim_outbox, mark_pushed, mark_push_failed, open_store, save_case
from fhir_cm.sync import NotPushed, Standing, where_cases_stand
from fhir_cm.synthetic import generate_cases

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


def test_each_asked_case_is_pushed_or_says_why_not(store: Store) -> None:
    cases = list(generate_cases(6, seed=3))
    ids = [c.id for c in cases]
    with store.session() as s:
        for case in cases:
            save_case(s, case, now=T0)
    with store.session() as s:
        done, failed, retry, held = claim_outbox(s, "w1", limit=4, lease_seconds=60, now=T0)
        [expired] = claim_outbox(s, "w2", limit=1, lease_seconds=10, now=T0)  # its lease ends before `now`
        mark_pushed(s, done, now=T0)
        mark_push_failed(s, failed, "the server refused the case: HTTP 422", retry=False, now=T0)
        mark_push_failed(s, retry, "TransientError 503; will retry", now=T0)
    now = T0 + dt.timedelta(seconds=30)

    standing = where_cases_stand(store, [*ids, ids[0]], now=now)  # asked twice: counted once

    assert (standing.asked, standing.pushed) == (6, 1)
    by_case = {n.case_id: n for n in standing.not_pushed}
    assert by_case[failed.case_id].state == "failed"
    assert by_case[failed.case_id].reason == "the server refused the case: HTTP 422"
    assert (by_case[retry.case_id].state, by_case[retry.case_id].reason) == (
        "waiting",
        "TransientError 503; will retry",
    )
    assert by_case[held.case_id] == NotPushed(
        case_id=held.case_id,
        state="held",
        reason="held by worker w1 until 2024-05-01T12:01:00+00:00",
        holder="w1",
        until=T0 + dt.timedelta(seconds=60),
    )
    assert by_case[expired.case_id].state == "waiting"
    assert (by_case[ids[5]].state, by_case[ids[5]].reason) == ("waiting", "queued for the next push")
    assert done.case_id not in by_case
    assert standing.line() == "1 of 6 cases pushed, 5 not"
    assert standing.held_lines() == [f"1 case held by worker w1 until 2024-05-01T12:01:00+00:00 ({held.case_id})"]
    assert [n.case_id for n in standing.failed] == [failed.case_id]


def test_nothing_asked_is_complete() -> None:
    assert Standing(asked=0, pushed=0).complete
    assert Standing(asked=0, pushed=0).line() == "0 of 0 cases pushed"
