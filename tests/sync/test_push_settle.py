"""Rows settled in groups: cases that finish while a group is written go in the next transaction
together, each with its ledger entries; a row taken over meanwhile is left to its new holder, and the
ledger entries of its push are written all the same."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from pathlib import Path

import pytest

from sqlalchemy.orm import Session

from fhir_cm.domain import Case
from fhir_cm.store import (
    LedgerEntry,
    OutboxItem,
    OutboxStatus,
    claim_outbox,
    list_ledger,
    list_outbox,
    open_store,
    queue_push,
    save_case,
)
from fhir_cm.sync import _settle
from fhir_cm.sync._report import PushReport
from fhir_cm.sync._settle import Settler
from fhir_cm.synthetic import generate_cases
from tests.pg import temporary_database

BASE = "http://fhir.example/r4"


def entry(case_id: str) -> LedgerEntry:
    copy = {"resourceType": "EpisodeOfCare", "id": f"s-{case_id}"}
    return LedgerEntry(
        server_base=BASE, resource_type="EpisodeOfCare", key=case_id, case_id=case_id, server_id=f"s-{case_id}",
        version_id="1", content_hash="x", server_copy=copy,
    )  # fmt: skip


def queued_and_claimed(session: Session, cases: list[Case], *, lease_seconds: float) -> list[OutboxItem]:
    for case in cases:
        save_case(session, case, enqueue=False)
        queue_push(session, case.id)
    return claim_outbox(session, "w", limit=10, lease_seconds=lease_seconds)


async def settle_all(settler: Settler, items: list[OutboxItem]) -> None:
    """Every row's case finishing at once, each with one ledger entry."""
    await asyncio.gather(*(settler.settle(i, PushReport(cases=1), [entry(i.case_id)]) for i in items))


def counted_groups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each group settled from now on, in order."""
    groups: list[int] = []
    original = _settle.settle_rows

    def counted(store, rows):  # type: ignore[no-untyped-def]
        groups.append(len(rows))
        original(store, rows)

    monkeypatch.setattr(_settle, "settle_rows", counted)
    return groups


async def test_cases_finishing_together_are_settled_in_one_transaction_with_their_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = counted_groups(monkeypatch)
    cases = list(generate_cases(6, seed=81))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with store.session() as s:
            items = queued_and_claimed(s, cases, lease_seconds=60)

        await settle_all(Settler(store), items)

        assert sum(groups) == 6 and len(groups) < 6  # the first alone, those finishing meanwhile together
        with store.session(read_only=True) as s:
            assert {r.status for r in list_outbox(s)} == {OutboxStatus.DONE}
            assert {e.case_id for e in list_ledger(s, BASE)} == {c.id for c in cases}


async def test_rows_finishing_within_the_linger_go_in_one_group_and_a_last_one_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cases finishing a few milliseconds apart are settled together (one transaction), where
    without the wait each would be written alone; a case finishing with no other being pushed does
    not wait for the linger at all (here a minute: the test would time out)."""
    groups = counted_groups(monkeypatch)
    cases = list(generate_cases(4, seed=84))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with store.session() as s:
            items = queued_and_claimed(s, cases, lease_seconds=60)

        async def one_after_another(settler: Settler, rows: list[OutboxItem]) -> None:
            pending = []
            for item in rows:
                pending.append(asyncio.ensure_future(settler.settle(item, PushReport(cases=1), [entry(item.case_id)])))
                await asyncio.sleep(0.01)
            await asyncio.gather(*pending)

        await one_after_another(Settler(store, linger_seconds=2.0), items[:3])
        alone = Settler(store, linger_seconds=60.0)
        await asyncio.wait_for(alone.settle(items[3], PushReport(cases=1), [entry(items[3].case_id)], last=True), 30)

        assert groups == [3, 1]
        with store.session(read_only=True) as s:
            assert {r.status for r in list_outbox(s)} == {OutboxStatus.DONE}


async def test_a_row_taken_over_meanwhile_is_not_settled_here_but_its_entries_are_written(tmp_path: Path) -> None:
    cases = list(generate_cases(3, seed=82))
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with store.session() as s:
            items = queued_and_claimed(s, cases, lease_seconds=1)
            later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
            [stolen] = claim_outbox(s, "other", limit=1, lease_seconds=60, now=later)  # the lease ran out

        await settle_all(Settler(store), items)

        with store.session(read_only=True) as s:
            rows = {r.case_id: r for r in list_outbox(s)}
            assert rows[stolen.case_id].status == OutboxStatus.IN_FLIGHT and rows[stolen.case_id].claimed_by == "other"
            assert {r.status for k, r in rows.items() if k != stolen.case_id} == {OutboxStatus.DONE}
            assert {e.case_id for e in list_ledger(s, BASE)} == {c.id for c in cases}


def patient_entry(case_id: str) -> LedgerEntry:
    """The Patient both cases of one person record: the same resource, so the same ledger row."""
    copy = {"resourceType": "Patient", "id": "s-pat", "meta": {"versionId": case_id}}
    return LedgerEntry(
        server_base=BASE, resource_type="Patient", key="pat-shared", server_id="s-pat", version_id=case_id,
        content_hash=case_id, server_copy=copy,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_group_whose_cases_record_the_same_resource_is_settled_in_one_go(tmp_path: Path, backend: str) -> None:
    """The group's entries are written together: the last entry of each resource is the one that
    stands (as when each case wrote its own in turn), on both stores, and both rows are settled."""
    cases = list(generate_cases(2, seed=83))
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite" else stack.enter_context(temporary_database())
        store = stack.enter_context(open_store(url))
        with store.session() as s:
            first, second = queued_and_claimed(s, cases, lease_seconds=60)
        rows = [
            (item, PushReport(cases=1), [entry(item.case_id), patient_entry(item.case_id)]) for item in (first, second)
        ]

        _settle.settle_rows(store, rows)

        with store.session(read_only=True) as s:
            assert {r.status for r in list_outbox(s)} == {OutboxStatus.DONE}
            held = {e.key: e for e in list_ledger(s, BASE)}
        assert set(held) == {cases[0].id, cases[1].id, "pat-shared"}
        assert held["pat-shared"].version_id == second.case_id  # the later case's, as before
