"""The audit log, for supervisors: who read or changed which case, when, and how."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Query, Response

from fhir_cm.store import AuditEntry, Store, list_audit

from .._answers import json_answer
from .._deps import Supervisor, get_store
from .._models import EntityId, Instant
from .._routing import api_router

__all__ = ["router"]

router = api_router(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntry], summary="Read the audit log")
def audit_log(
    principal: Supervisor,
    store: Annotated[Store, Depends(get_store)],
    case_id: Annotated[EntityId | None, Query(description="Only this case's accesses.")] = None,
    key_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{16}$", description="Only this API key's.")] = None,
    since: Annotated[Instant | None, Query(description="Only entries at or after this instant (ISO 8601).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Response:
    """Newest first. A supervisor of one programme sees the entries of the cases now in that programme."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    # Chosen in the store before the page is cut (by the case row's programme, as a supervisor is
    # judged, a case this version cannot read too): filtered after, a page came out short or empty
    # while the programme's entries went on further back.
    scope = principal.programme.value if principal.programme is not None else None
    with store.session(read_only=True) as session:
        entries = list_audit(
            session, case_id=case_id, principal=key_id, since=since, limit=limit, offset=offset, programme=scope
        )
    return json_answer(entries)
