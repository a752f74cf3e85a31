"""Every request thread may hold a read session while it waits for the audit writer, and the writer
still gets a connection: the pool outnumbers the threads that serve requests."""

from __future__ import annotations

import threading
from pathlib import Path

from fhir_cm.api._app import REQUEST_THREADS
from fhir_cm.store import list_audit, open_store
from fhir_cm.store._engine import MAX_OVERFLOW, POOL_SIZE


def test_the_pool_leaves_the_audit_writer_a_connection() -> None:
    assert POOL_SIZE + MAX_OVERFLOW > REQUEST_THREADS  # each thread one session, the writer one more


def test_every_thread_holding_a_session_while_auditing_completes(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        started = threading.Barrier(REQUEST_THREADS)
        errors: list[BaseException] = []

        def request(n: int) -> None:
            try:
                with store.session(read_only=True):  # as the FHIR routes hold theirs while auditing
                    started.wait(timeout=30)
                    store.audit.record(principal="k", action="read", case_ids=[f"case-{n}"])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=request, args=(n,)) for n in range(REQUEST_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads) and errors == []
        with store.session(read_only=True) as s:
            assert len(list_audit(s, limit=100)) == REQUEST_THREADS
