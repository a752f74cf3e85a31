"""Audit rows of reads by group commit: every row of every request written, errors told to each waiter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
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


def test_concurrent_reads_share_commits_and_every_row_is_written(store: Store) -> None:
    commits = 0
    real_session = store.session

    def counting_session(**kwargs: Any) -> Any:
        nonlocal commits
        if not kwargs.get("read_only"):
            commits += 1
        return real_session(**kwargs)

    store.session = counting_session  # type: ignore[method-assign]
    group = AuditGroup(store)
    start = threading.Barrier(16)

    def reader(n: int) -> None:
        start.wait()
        for i in range(20):
            group.record(principal=f"key-{n}", action="read", case_ids=[f"case-{n}-{i}"], request_id=f"r-{n}-{i}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.session = real_session  # type: ignore[method-assign]
    with store.session(read_only=True) as s:
        rows = list_audit(s, limit=1000)
    assert sorted(r.case_id for r in rows if r.case_id) == sorted(f"case-{n}-{i}" for n in range(16) for i in range(20))
    assert commits <= 16 * 20  # never more than one transaction per request; fewer when they overlap


def test_a_group_is_written_in_one_execution(store: Store) -> None:
    """However many requests and cases a group holds, its rows go to the database in one execution
    (not one per request): the group's cost stays near one request's as the load grows."""
    executions: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if statement.startswith("INSERT INTO audit_log"):
            executions.append(len(parameters) if many else 1)

    commits: list[object] = []

    def committed(conn: Any) -> None:
        commits.append(conn)

    event.listen(store.engine, "before_cursor_execute", count)
    event.listen(store.engine, "commit", committed)
    group = AuditGroup(store)
    start = threading.Barrier(8)

    def reader(n: int) -> None:
        start.wait()
        for i in range(10):
            group.record(principal=f"key-{n}", action="list", case_ids=[f"case-{n}-{i}", f"case-{n}-{i}-b"])

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    event.remove(store.engine, "before_cursor_execute", count)
    event.remove(store.engine, "commit", committed)
    with store.session(read_only=True) as s:
        written = list_audit(s, limit=1000)
    assert len(written) == 8 * 10 * 2 == sum(executions)
    assert len(executions) == len(commits) < 8 * 10  # groups formed, and each went in one execution


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
