"""Post-discharge placement (Clinical Order Workflows): offer a case to facilities, follow, choose.

The offer lives on the FHIR server (one ServiceRequest, one Task per candidate facility); these routes
write it there, read each facility's answer back from there, and settle it on the patient's choice —
the same jobs as ``fhir-cm placement``. An offer and a choice (which puts the facility on the care team)
are audited (``placement-offer``, ``placement-choose``) in the transaction recording them. No FHIR server
configured → 409; the server refusing → 502 with its reason; choosing a facility that has not accepted
→ 409 saying so.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fhir_cm import jobs
from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting
from fhir_cm.fhir import FhirError
from fhir_cm.store import Placement, record_audit
from fhir_cm.sync import PlacementError, PlacementHook

from .._deps import CaseWork, get_settings
from .._models import EntityId
from .._problems import BadGateway, ProblemDocument, ConflictProblem, NotFoundProblem
from .._routing import api_router
from .cases import CaseId

__all__ = ["router"]

#: The FHIR server failed or refused; the detail carries its reason.
_UPSTREAM = {"model": ProblemDocument, "description": "The FHIR server failed or refused (its reason in the detail)",
             "content": {"application/problem+json": {}}}  # fmt: skip
router = api_router(prefix="/cases/{case_id}/placements", tags=["placement"], responses={502: _UPSTREAM})
T = TypeVar("T")
PlacementId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")]


class PlacementIn(BaseModel):
    """What to offer: the care setting asked for and the candidate facilities (Organization ids on the server)."""

    model_config = ConfigDict(extra="forbid")

    setting: CareSetting
    candidates: list[EntityId] = Field(min_length=1, max_length=20)
    service: str | None = Field(default=None, min_length=1, max_length=500, description="What is asked for, in words.")


class ChoiceIn(BaseModel):
    """The facility the patient chose."""

    model_config = ConfigDict(extra="forbid")

    candidate: EntityId


async def _on_server(settings: Settings, job: Callable[[], Awaitable[T]]) -> T:
    """Run ``job`` against the FHIR server; started only once a server is known to be configured."""
    if not settings.fhir_base:
        raise ConflictProblem("no FHIR server is configured: set FHIR_CM_FHIR_BASE and restart the service")
    try:
        return await job()
    except PlacementError as exc:
        raise ConflictProblem(str(exc)) from None
    except FhirError as exc:
        raise BadGateway.of(exc, "the placement") from None


async def _visible(work: CaseWork, case_id: str) -> None:
    await run_in_threadpool(work.load, case_id)  # 404 unless the caller may see the case (audited)


def _audited(work: CaseWork, action: str, detail: Callable[[Placement], str]) -> PlacementHook:
    """The audit row of an offer or a choice, written in the transaction that records it."""

    def audit(session: Session, offer: Placement) -> None:
        record_audit(
            session,
            principal=work.principal.id,
            action=action,
            case_ids=[offer.case_id],
            detail=detail(offer),
            request_id=work.request_id,
        )

    return audit


def _of_case(offer: Placement, case_id: str) -> Placement:
    if offer.case_id != case_id:
        raise NotFoundProblem(f"no placement of case {case_id} with that id")
    return offer


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Placement, summary="Offer a placement")
async def offer(
    case_id: CaseId, body: PlacementIn, work: CaseWork, settings: Annotated[Settings, Depends(get_settings)]
) -> Placement:
    """One ServiceRequest and one request-fulfillment Task per candidate facility, on the FHIR server."""
    await _visible(work, case_id)
    return await _on_server(
        settings,
        functools.partial(
            jobs.offer_to_facilities,
            work.store,
            settings,
            case_id,
            body.setting,
            body.candidates,
            service=body.service,
            then=_audited(work, "placement-offer", lambda offer: f"placement:{offer.id}"),
        ),
    )


@router.get("", response_model=list[Placement], summary="A case's placement offers")
async def offers(case_id: CaseId, work: CaseWork) -> list[Placement]:
    """The offers recorded for the case, with each candidate's answer as last read back."""
    await _visible(work, case_id)
    return await run_in_threadpool(jobs.placements_of, work.store, case_id)


@router.get("/{placement_id}", response_model=Placement, summary="Follow a placement offer")
async def follow(
    case_id: CaseId, placement_id: PlacementId, work: CaseWork, settings: Annotated[Settings, Depends(get_settings)]
) -> Placement:
    """Each candidate's answer read back from the server now: rejected (with the reason), awaiting
    information (with the questions of the Communications on its Task), accepted."""
    await _visible(work, case_id)
    known = [p for p in await run_in_threadpool(jobs.placements_of, work.store, case_id) if p.id == placement_id]
    if not known:
        raise NotFoundProblem(f"no placement of case {case_id} with that id")
    return _of_case(
        await _on_server(settings, functools.partial(jobs.follow_placement, work.store, settings, placement_id)),
        case_id,
    )


@router.post("/{placement_id}/choose", response_model=Placement, summary="Settle on the patient's choice")
async def choose(
    case_id: CaseId,
    placement_id: PlacementId,
    body: ChoiceIn,
    work: CaseWork,
    settings: Annotated[Settings, Depends(get_settings)],
) -> Placement:
    """The chosen facility's Task "selected", the others cancelled ("not selected"); the facility joins the
    care team as the provider of the next stay. 409 unless that facility accepted."""
    await _visible(work, case_id)
    known = [p for p in await run_in_threadpool(jobs.placements_of, work.store, case_id) if p.id == placement_id]
    if not known:
        raise NotFoundProblem(f"no placement of case {case_id} with that id")
    chosen = _audited(work, "placement-choose", lambda offer: f"placement:{offer.id}:{body.candidate}")
    return await _on_server(
        settings,
        functools.partial(
            jobs.choose_facility, work.store, settings, placement_id, body.candidate, as_of=work.today, then=chosen
        ),
    )
