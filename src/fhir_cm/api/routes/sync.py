"""Sync control: trigger a push or a pull, see the outbox, settle conflicts, look at the quarantine.

The work itself is the use-case layer's (``fhir_cm.jobs``): the push, the pull and a conflict's
resolution run exactly as ``fhir-cm push --all``, ``fhir-cm pull`` and ``fhir-cm conflicts resolve``
run them. Triggers and the quarantine (raw resources from the server, not tied to a case one may
see) are for supervisors; conflicts are shown to whoever may see their case.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from fhir_cm import jobs
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import FhirError
from fhir_cm.store import (
    ConflictRecord,
    ConflictStatus,
    OutboxStatus,
    QuarantinedResource,
    Resolution,
    Store,
    NotFound,
    count_quarantine,
    dismiss_quarantine,
    list_conflicts,
    list_quarantine,
    outbox_counts,
    record_audit,
)
from fhir_cm.sync import ConflictNotResolvable

from .._access import can_see, sees_stored
from .._auth import Principal
from .._deps import CaseWork, Supervisor, SupervisorOfAll, get_settings, get_store
from .._models import EntityId, Instant
from .._problems import BadGateway, ProblemDocument, ConflictProblem, InvalidInput, NotFoundProblem
from .._routing import api_router

__all__ = ["router"]

#: The FHIR server failed or refused; the detail carries its reason.
_UPSTREAM = {"model": ProblemDocument, "description": "The FHIR server failed or refused (its reason in the detail)",
             "content": {"application/problem+json": {}}}  # fmt: skip
router = api_router(prefix="/sync", tags=["sync"], responses={502: _UPSTREAM})


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

    since: Instant | None = None
    patient: EntityId | None = None


class ResolveIn(BaseModel):
    """How a person settles a conflict: keep the local value, take the server's, or a merged one."""

    model_config = ConfigDict(extra="forbid")

    resolution: Resolution


def _as_dict(report: Any) -> dict[str, Any]:
    if isinstance(report, jobs.PushOutcome):
        return report.summary()
    if isinstance(report, BaseModel):
        dumped: dict[str, Any] = report.model_dump(mode="json")
        return dumped
    if isinstance(report, dict):
        return report
    return {"result": None if report is None else str(report)}


async def _run(request: Request, operation: str, settings: Settings, job: Coroutine[Any, Any, Any]) -> SyncRun:
    """Await a use case's ``job``, answering 409 without a server and 502 when the server fails."""
    if not settings.fhir_base:
        job.close()  # never started: no "never awaited" warning
        raise ConflictProblem("no FHIR server is configured: set FHIR_CM_FHIR_BASE and restart the service")
    metrics = request.app.state.metrics
    try:
        result = await job
    except jobs.NoFhirServer:
        raise ConflictProblem("no FHIR server is configured: set FHIR_CM_FHIR_BASE and restart the service") from None
    except FhirError as exc:
        metrics.sync_run(operation, "failed")
        raise BadGateway.of(exc, operation) from None
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
    """Send every pending outbox row, and every case not yet pushed to this server, to the FHIR server
    (idempotent; safe to repeat) — as ``fhir-cm push --all`` does, without waiting for cases another
    live worker holds. The report has the push's counts and where the cases asked for stand."""
    return await _run(request, "push", settings, jobs.run_push(store, settings, everything_pending=True, wait=False))


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
    options = body if body is not None else PullIn()
    return await _run(
        request, "pull", settings, jobs.run_pull(store, settings, since=options.since, patient=options.patient)
    )


@router.get("/status", response_model=SyncStatus, summary="Sync status")
def sync_status(
    work: CaseWork,
    settings: Annotated[Settings, Depends(get_settings)],
) -> SyncStatus:
    """Counts only (no case data): the outbox per status, open conflicts, quarantined resources."""
    with work.store.session(read_only=True) as session:
        counts = outbox_counts(session)
        conflicts = len(list_conflicts(session))
        quarantined = count_quarantine(session)
    return SyncStatus(
        fhir_base_configured=bool(settings.fhir_base),
        push_available=True,
        pull_available=True,
        outbox=counts,
        open_conflicts=conflicts,
        quarantined=quarantined,
    )


def _visible_conflicts(work: CaseWork, conflicts: list[ConflictRecord]) -> list[ConflictRecord]:
    verdict: dict[str, bool] = {}
    with work.store.session(read_only=True) as session:
        for c in conflicts:
            if c.case_id not in verdict:
                verdict[c.case_id] = sees_stored(session, work.principal, c.case_id, work.today)
    return [c for c in conflicts if verdict[c.case_id]]


@router.get("/conflicts", response_model=list[ConflictRecord], summary="Conflicts to resolve")
def conflicts(
    work: CaseWork,
    case_id: Annotated[EntityId | None, Query(description="Only this case's.")] = None,
    status: ConflictStatus | None = ConflictStatus.OPEN,
) -> list[ConflictRecord]:
    """Resources both sides changed where the changes clash, for the cases the caller may see."""
    with work.store.session(read_only=True) as session:
        found = list_conflicts(session, case_id=case_id, status=status)
    return _visible_conflicts(work, found)


@router.post("/conflicts/{conflict_id}/resolve", response_model=ConflictRecord, summary="Resolve a conflict")
def resolve(
    conflict_id: Annotated[int, Path(ge=1, le=2**62)],
    body: ResolveIn,
    work: CaseWork,
) -> ConflictRecord:
    """Settle an open conflict as ``fhir-cm conflicts resolve`` does: ``local`` puts the local value
    back into the case and queues it (the next push sends it over the server's copy), ``server``
    keeps the server's value. ``merged`` is refused (422): edit the case, then resolve with ``local``."""
    if body.resolution is Resolution.MERGED:
        raise InvalidInput(
            "a merged resolution is not applied here: edit the case to the merged value, "
            "then resolve the conflict with 'local'"
        )

    def visible(case: Case) -> bool:
        return can_see(work.principal, case, work.today)

    def audit(session: Any, resolved: ConflictRecord) -> None:
        record_audit(
            session,
            principal=work.principal.id,
            action="resolve-conflict",
            case_ids=[resolved.case_id],
            detail=f"conflict:{conflict_id}:{body.resolution}",
            request_id=work.request_id,
        )

    keep: jobs.Keep = "local" if body.resolution is Resolution.LOCAL else "server"
    try:
        return jobs.settle_conflict(
            work.store, conflict_id, keep, resolved_by=work.principal.id, visible=visible, then=audit
        )
    except NotFound:
        raise NotFoundProblem(f"no open conflict {conflict_id}") from None
    except ConflictNotResolvable as exc:
        raise ConflictProblem(str(exc)) from None


@router.get("/quarantine", response_model=list[QuarantinedResource], summary="Quarantined resources")
def quarantine(
    request: Request,
    principal: SupervisorOfAll,
    store: Annotated[Store, Depends(get_store)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000, description="Entries to skip (the next page).")] = 0,
    resource_type: Annotated[str | None, Query(pattern=r"^[A-Za-z]{1,64}$")] = None,
    source: Annotated[str | None, Query(max_length=2048, description="Only those from this server base.")] = None,
    dismissed: Annotated[bool, Query(description="The dismissed entries instead of the open ones.")] = False,
) -> list[QuarantinedResource]:
    """Resources a pull could not read, newest first, with the reason, for a supervisor over every
    programme to look at (403 for one limited to a programme: an entry is of no case, so of no programme).

    They are the resources as the server sent them, patient data included: each list is audited
    (``quarantine``, no case: an entry is not always of one)."""
    with store.session(read_only=True) as session:
        found = list_quarantine(
            session, source=source, resource_type=resource_type, limit=limit, offset=offset, dismissed=dismissed
        )
    if found:
        store.audit.record(
            **_audited(request, principal, "quarantine", f"entries:{','.join(str(q.id) for q in found)}")
        )
    return found


def _audited(request: Request, principal: Principal, action: str, detail: str) -> dict[str, Any]:
    """An audit row about the quarantine: no case (an entry is not always of one), the entries by id."""
    request_id = getattr(request.state, "request_id", None)
    return {"principal": principal.id, "action": action, "case_ids": [None], "detail": detail, "request_id": request_id}


@router.post(
    "/quarantine/{entry_id}/dismiss", response_model=QuarantinedResource, summary="Dismiss a quarantined resource"
)
def dismiss(
    request: Request,
    principal: SupervisorOfAll,
    store: Annotated[Store, Depends(get_store)],
    entry_id: Annotated[int, Path(ge=1, le=2**62)],
) -> QuarantinedResource:
    """Mark an entry as dealt with (the server deleted the resource, it is not ours, it was put right
    elsewhere): lists and counts leave it out, pulls reading the same version again keep it dismissed,
    and a new version still bad brings it back. 404 if there is no such entry (a copy taken in since
    clears it). Audited as ``quarantine-dismiss``."""
    with store.session() as session:
        entry = dismiss_quarantine(session, entry_id, by=principal.id)
        if entry is None:
            raise NotFoundProblem(f"no quarantine entry {entry_id}")
        record_audit(session, **_audited(request, principal, "quarantine-dismiss", f"entry:{entry_id}"))
    return entry
