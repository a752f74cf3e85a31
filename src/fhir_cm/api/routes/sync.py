"""Sync control: trigger a push or a pull, see the outbox, settle conflicts, look at the quarantine.

The work itself is the sync layer's (``fhir_cm.sync.push_pending`` and ``pull_and_track``); in a build
without it, the trigger routes answer 501 rather than pretending. Triggers and the quarantine (raw
resources from the server, not tied to a case one may see) are for supervisors; conflicts are
shown to whoever may see their case.
"""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Annotated, Any

from fastapi import Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

import fhir_cm.sync as sync_layer
from fhir_cm.config import Settings
from fhir_cm.fhir import FhirError, client_from_settings
from fhir_cm.store import (
    Conflict as StoredConflict,
)
from fhir_cm.store import (
    ConflictStatus,
    OutboxStatus,
    QuarantinedResource,
    Resolution,
    Store,
    get_case,
    list_conflicts,
    list_quarantine,
    outbox_counts,
    record_audit,
    resolve_conflict,
)

from .._access import can_see
from .._deps import CaseWork, Supervisor, get_settings, get_store
from .._models import EntityId
from .._problems import BadGateway, Conflict, NotFoundProblem, NotImplementedProblem
from .._routing import api_router

__all__ = ["router"]

router = api_router(prefix="/sync", tags=["sync"])


class SyncRun(BaseModel):
    """The outcome of one push or pull: the sync layer's report, as it gave it."""

    operation: str
    report: dict[str, Any]


class SyncStatus(BaseModel):
    """Where sync stands: outbox rows per status, open conflicts, quarantined resources."""

    fhir_base_configured: bool
    push_available: bool
    pull_available: bool
    outbox: dict[OutboxStatus, int]
    open_conflicts: int
    quarantined: int


class PullIn(BaseModel):
    """What to pull: changes since a time (default: the stored watermark), one patient's only."""

    model_config = ConfigDict(extra="forbid")

    since: dt.datetime | None = None
    patient: EntityId | None = None


class ResolveIn(BaseModel):
    """How a person settles a conflict: keep the local value, take the server's, or a merged one."""

    model_config = ConfigDict(extra="forbid")

    resolution: Resolution


def _as_dict(report: Any) -> dict[str, Any]:
    if isinstance(report, BaseModel):
        dumped: dict[str, Any] = report.model_dump(mode="json")
        return dumped
    if isinstance(report, dict):
        return report
    return {"result": None if report is None else str(report)}


async def _run(request: Request, operation: str, function: str, settings: Settings, store: Store, **kwargs: Any) -> SyncRun:
    run = getattr(sync_layer, function, None)
    if run is None:
        raise NotImplementedProblem(f"this build has no sync layer '{function}' yet; use the CLI when it lands")
    if not settings.fhir_base:
        raise Conflict("no FHIR server is configured: set FHIR_CM_FHIR_BASE and restart the service")
    metrics = request.app.state.metrics
    try:
        async with client_from_settings(settings) as client:
            result = run(store, client, settings, **kwargs)
            if inspect.isawaitable(result):
                result = await result
    except FhirError as exc:
        metrics.sync_run(operation, "failed")
        raise BadGateway(f"the FHIR server failed during {operation} ({type(exc).__name__})") from None
    report = _as_dict(result)
    metrics.sync_run(operation, "ok", report)
    return SyncRun(operation=operation, report=report)


@router.post("/push", response_model=SyncRun, summary="Push pending changes now")
async def push(
    request: Request,
    _: Supervisor,
    settings: Annotated[Settings, Depends(get_settings)],
    store: Annotated[Store, Depends(get_store)],
) -> SyncRun:
    """Send every pending outbox row to the FHIR server (idempotent; safe to repeat)."""
    return await _run(request, "push", "push_pending", settings, store)


@router.post("/pull", response_model=SyncRun, summary="Pull server changes now")
async def pull(
    request: Request,
    _: Supervisor,
    settings: Annotated[Settings, Depends(get_settings)],
    store: Annotated[Store, Depends(get_store)],
    body: Annotated[PullIn | None, Body()] = None,
) -> SyncRun:
    """Read what changed on the FHIR server since the watermark (or ``since``) into the cases, then
    track the transitions of the cases it touched (as ``fhir-cm pull`` does)."""
    options = body.model_dump(exclude_none=True) if body else {}
    return await _run(request, "pull", "pull_and_track", settings, store, **options)


@router.get("/status", response_model=SyncStatus, summary="Sync status")
def sync_status(
    work: CaseWork,
    settings: Annotated[Settings, Depends(get_settings)],
) -> SyncStatus:
    """Counts only (no case data): the outbox per status, open conflicts, quarantined resources."""
    with work.store.session(read_only=True) as session:
        counts = outbox_counts(session)
        conflicts = len(list_conflicts(session))
        quarantined = len(list_quarantine(session))
    return SyncStatus(
        fhir_base_configured=bool(settings.fhir_base),
        push_available=hasattr(sync_layer, "push_pending"),
        pull_available=hasattr(sync_layer, "pull_and_track"),
        outbox=counts,
        open_conflicts=conflicts,
        quarantined=quarantined,
    )


def _visible_conflicts(work: CaseWork, conflicts: list[StoredConflict]) -> list[StoredConflict]:
    verdict: dict[str, bool] = {}
    with work.store.session(read_only=True) as session:
        for c in conflicts:
            if c.case_id not in verdict:
                case = get_case(session, c.case_id)
                verdict[c.case_id] = case is not None and can_see(work.principal, case, work.today)
    return [c for c in conflicts if verdict[c.case_id]]


@router.get("/conflicts", response_model=list[StoredConflict], summary="Conflicts to resolve")
def conflicts(
    work: CaseWork,
    case_id: Annotated[EntityId | None, Query(description="Only this case's.")] = None,
    status: ConflictStatus | None = ConflictStatus.OPEN,
) -> list[StoredConflict]:
    """Resources both sides changed where the changes clash, for the cases the caller may see."""
    with work.store.session(read_only=True) as session:
        found = list_conflicts(session, case_id=case_id, status=status)
    return _visible_conflicts(work, found)


@router.post("/conflicts/{conflict_id}/resolve", response_model=StoredConflict, summary="Resolve a conflict")
def resolve(
    conflict_id: Annotated[int, Path(ge=1, le=2**62)],
    body: ResolveIn,
    work: CaseWork,
) -> StoredConflict:
    """Settle an open conflict (``local``, ``server`` or ``merged``); the sync layer applies the outcome."""
    with work.store.session() as session:
        found = next((c for c in list_conflicts(session, status=ConflictStatus.OPEN) if c.id == conflict_id), None)
        case = get_case(session, found.case_id) if found is not None else None
        if case is None or not can_see(work.principal, case, work.today):
            raise NotFoundProblem(f"no open conflict {conflict_id}")
        resolved = resolve_conflict(session, conflict_id, body.resolution, resolved_by=work.principal.id)
        record_audit(session, principal=work.principal.id, action="resolve-conflict", case_ids=[resolved.case_id],
                     detail=f"conflict:{conflict_id}:{body.resolution}", request_id=work.request_id)
    return resolved


@router.get("/quarantine", response_model=list[QuarantinedResource], summary="Quarantined resources")
def quarantine(
    _: Supervisor,
    store: Annotated[Store, Depends(get_store)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    resource_type: Annotated[str | None, Query(pattern=r"^[A-Za-z]{1,64}$")] = None,
) -> list[QuarantinedResource]:
    """Resources a pull could not read, newest first, with the reason, for a supervisor to look at."""
    with store.session(read_only=True) as session:
        return list_quarantine(session, resource_type=resource_type, limit=limit)
