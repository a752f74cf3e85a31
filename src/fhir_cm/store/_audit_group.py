"""Audit rows of reads, written by group commit: many requests, one transaction, none answered unwritten.

Every read of a case is audited. Written one transaction per request, the audit turns a read-mostly
API into a queue of writers: on SQLite each commit takes the database's one write lock (and a sync to
disk), on PostgreSQL each is a WAL flush. Here a request hands its rows to the group and waits; the
first waiter that finds no write in progress writes everything queued so far in one transaction and
wakes the others. So concurrent reads share commits instead of taking turns, and a request is still
answered only after its audit rows are durable: a crash loses no audit row of an answered request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._audit import audit_rows, write_audit_rows

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["AuditGroup"]


@dataclass
class _Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None


class AuditGroup:
    """Group commit of audit rows into one store (thread-safe; one per store and process)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._open = _Batch()  # the batch rows are being added to
        self._writing = False

    def record(
        self,
        *,
        principal: str,
        action: str,
        case_ids: Iterable[str | None],
        detail: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Record the rows and return once they are committed (raises if their transaction failed)."""
        self.record_each(principal=principal, action=action, by_detail={detail: case_ids}, request_id=request_id)

    def record_each(
        self,
        *,
        principal: str,
        action: str,
        by_detail: Mapping[str | None, Iterable[str | None]],
        request_id: str | None = None,
    ) -> None:
        """:meth:`record` of rows of several details at once (detail → its cases): one request's rows go
        into one transaction together, and the request waits for one commit, not one per detail."""
        asked = [
            {"principal": principal, "action": action, "case_ids": ids, "detail": detail, "request_id": request_id}
            for detail, case_ids in by_detail.items()
            if (ids := list(case_ids))
        ]
        if not asked:
            return
        with self._cond:
            batch = self._open
            batch.rows.extend(asked)
            while not batch.done:
                if self._writing:
                    self._cond.wait()
                    continue
                # Lead: take everything queued so far (this batch), write it, wake the others.
                self._writing, self._open = True, _Batch()
                self._cond.release()
                try:
                    self._write(batch)
                finally:
                    self._cond.acquire()
                    self._writing, batch.done = False, True
                    self._cond.notify_all()
        if batch.error is not None:
            raise batch.error

    def _write(self, batch: _Batch) -> None:
        try:
            rows = [row for asked in batch.rows for row in audit_rows(**asked)]
            with self._store.session() as session:
                write_audit_rows(session, rows)  # one execution for the whole group
        except BaseException as exc:  # every request of the batch is told; none is answered as audited
            batch.error = exc
