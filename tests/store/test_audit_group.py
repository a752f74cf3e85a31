"""Audit rows of reads by group commit: every row of every request written, errors told to each waiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from fhir_cm.store import Store, list_audit, open_store
from fhir_cm.store._audit_group import AuditGroup


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'audit.db'}") as opened:
        yield opened


@contextmanager
def _counting_commits(store: Store) -> Iterator[list[int]]:
    """The store's write transactions begun inside, counted in the one-item list yielded."""
    commits = [0]
    real_session = store.session

    def counting_session(**kwargs: Any) -> Any:
        if not kwargs.get("read_only"):
            commits[0] += 1
        return real_session(**kwargs)

    store.session = counting_session  # type: ignore[method-assign]
    try:
        yield commits
    finally:
        store.session = real_session  # type: ignore[method-assign]


def test_concurrent_reads_share_commits_and_every_row_is_written(store: Store) -> None:
    group = AuditGroup(store)
    start = threading.Barrier(16)

    def reader(n: int) -> None:
        start.wait()
        for i in range(20):
            group.record(principal=f"key-{n}", action="read", case_ids=[f"case-{n}-{i}"], request_id=f"r-{n}-{i}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
    with _counting_commits(store) as commits:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with store.session(read_only=True) as s:
        rows = list_audit(s, limit=1000)
    assert sorted(r.case_id for r in rows if r.case_id) == sorted(f"case-{n}-{i}" for n in range(16) for i in range(20))
    assert commits[0] <= 16 * 20  # never more than one transaction per request; fewer when they overlap


def test_a_group_is_written_in_one_execution(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many requests and cases a group holds, its rows go to the database in one execution
    (not one per request): the group's cost stays near one request's as the load grows. The first
    request's write is held until seven more requests have queued behind it, so they form one group."""
    import fhir_cm.store._audit_group as module

    executions: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO audit_log"):
            executions.append(len(parameters) if many else 1)

    commits: list[object] = []

    def committed(conn: Any) -> None:
        commits.append(conn)

    group = AuditGroup(store)
    release = threading.Event()
    real = module.write_audit_rows

    def held_first(session: Any, rows: Any) -> int:
        if not release.is_set():
            assert release.wait(timeout=60), "the others never queued"
        return real(session, rows)

    def queued() -> int:
        with group._cond:
            return len(group._open.rows)

    monkeypatch.setattr(module, "write_audit_rows", held_first)
    event.listen(store.engine, "before_cursor_execute", count)
    event.listen(store.engine, "commit", committed)

    def reader(n: int) -> None:
        group.record(principal=f"key-{n}", action="list", case_ids=[f"case-{n}", f"case-{n}-b"])

    first = threading.Thread(target=reader, args=(0,))
    first.start()
    others = [threading.Thread(target=reader, args=(n,)) for n in range(1, 8)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 60
    while queued() < 7 and time.monotonic() < deadline:  # the seven are waiting behind the held write
        time.sleep(0.005)
    release.set()
    for t in [first, *others]:
        t.join()
    event.remove(store.engine, "before_cursor_execute", count)
    event.remove(store.engine, "commit", committed)
    with store.session(read_only=True) as s:
        written = list_audit(s, limit=1000)
    assert len(written) == 8 * 2
    assert executions == [2, 7 * 2]  # the first request alone, then the seven as one group, in one execution
    assert len(commits) == 2


def test_a_failed_write_is_raised_to_the_request_and_the_next_one_still_writes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fhir_cm.store._audit_group as module

    real = module.write_audit_rows
    calls = 0

    def failing_once(session: Any, rows: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk full")
        return real(session, rows)

    monkeypatch.setattr(module, "write_audit_rows", failing_once)
    group = AuditGroup(store)
    with pytest.raises(RuntimeError, match="disk full"):
        group.record(principal="k", action="read", case_ids=["case-0"])
    group.record(principal="k", action="read", case_ids=["case-1"])
    with store.session(read_only=True) as s:
        assert [r.case_id for r in list_audit(s, limit=10)] == ["case-1"]


def test_nothing_to_record_writes_nothing(store: Store) -> None:
    AuditGroup(store).record(principal="k", action="list", case_ids=[])
    with store.session(read_only=True) as s:
        assert list_audit(s, limit=10) == []


def test_rows_of_several_details_are_one_requests_one_transaction(store: Store) -> None:
    """A view shown again audits a few cases, the cases that left it and a row pointing at the showing
    that listed the rest (``record_each``): all in one transaction, so the request waits for one commit
    and the rows stand or fall together."""
    with _counting_commits(store) as commits:
        AuditGroup(store).record_each(
            principal="k",
            action="caseload",
            by_detail={None: ["c-2", "c-3"], "changed:r-1": [None], "left:r-1": ["c-9"], "unused": []},
            request_id="r-2",
        )
    with store.session(read_only=True) as s:
        rows = sorted((r.case_id or "", r.detail or "", r.request_id) for r in list_audit(s, limit=10))
    assert rows == [("", "changed:r-1", "r-2"), ("c-2", "", "r-2"), ("c-3", "", "r-2"), ("c-9", "left:r-1", "r-2")]
    assert commits == [1]
