"""The audit log, for supervisors: who read or changed which case, when, and how."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Query, Response

from fhir_cm.store import AuditEntry, Store, list_audit

from .._access import sees_stored
from .._answers import json_answer
from .._deps import Supervisor, Today, get_store
from .._models import EntityId, Instant
from .._routing import api_router

__all__ = ["router"]

router = api_router(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntry], summary="Read the audit log")
def audit_log(
    principal: Supervisor,
    store: Annotated[Store, Depends(get_store)],
    today: Today,
    case_id: Annotated[EntityId | None, Query(description="Only this case's accesses.")] = None,
    key_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{16}$", description="Only this API key's.")] = None,
    since: Annotated[Instant | None, Query(description="Only entries at or after this instant (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Response:
    """Newest first. A supervisor of one programme sees the entries of that programme's cases."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    with store.session(read_only=True) as session:
        entries = list_audit(session, case_id=case_id, principal=key_id, since=since, limit=limit, offset=offset)
        if principal.programme is None:
            return json_answer(entries)
        seen: dict[str, bool] = {}
        for e in entries:
            if e.case_id is not None and e.case_id not in seen:
                seen[e.case_id] = sees_stored(session, principal, e.case_id, today)
    return json_answer([e for e in entries if e.case_id is not None and seen[e.case_id]])
