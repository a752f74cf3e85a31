"""A person's decision on a conflict, the same from the command line and the API."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from ..domain import Case
from ..store import ConflictRecord
from ..store import Store
from ..sync import Keep, resolve

__all__ = ["Keep", "settle_conflict"]


def settle_conflict(
    store: Store,
    conflict_id: int,
    keep: Keep,
    *,
    resolved_by: str | None = None,
    visible: Callable[[Case], bool] | None = None,
    then: Callable[[Session, ConflictRecord], None] | None = None,
) -> ConflictRecord:
    """Settle an open conflict: ``"local"`` puts the local value back into the case and queues it
    (the next push sends it over the server copy with ``If-Match``); ``"server"`` keeps the server's
    value. Either way the case is queued and the conflict marked resolved, in one transaction.

    Raises ``NotFound`` (no such open conflict, or one ``visible`` hides) and
    ``ConflictNotResolvable`` (it cannot be applied as asked).
    """
    return resolve(store, conflict_id, keep, resolved_by=resolved_by, visible=visible, then=then)
