"""The CDS Hooks service at ``/cds-services``: discovery, the hooks, feedback.

Not behind an API key: the EHR proves itself with a JWT signed by a key of an allow-listed issuer
(``FHIR_CM_CDS_ISSUERS``), addressed to this service's ``FHIR_CM_PUBLIC_URL`` (unset: every call
refused). A missing or unacceptable token → 401 (problem+json saying which check failed) before the
body is read, and nothing is recorded.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from sqlalchemy.orm import Session

from fhir_cm import cds
from fhir_cm.config import Settings
from fhir_cm.store import Store, record_audit

from .._deps import Today, get_settings, get_store
from .._problems import (
    DataUnavailable,
    FieldError,
    InvalidInput,
    NotFoundProblem,
    ProblemDocument,
    UnauthorizedProblem,
)

__all__ = ["router"]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDocument, "description": text, "content": {"application/problem+json": {}}}
    for status, text in {
        400: "A body that is not JSON",
        401: "No JWT, or one that is not acceptable (the detail says which check failed; nothing recorded)",
        404: "No such service",
        412: "The data the answer needs was neither prefetched nor read from the EHR's server in time "
        "(FHIR_CM_CDS_DEADLINE): the detail says which and why",
        422: "A call the service cannot answer as sent; feedback naming a card this service never issued",
    }.items()
}
router = APIRouter(prefix="/cds-services", tags=["CDS Hooks"], responses=_PROBLEMS)
ServiceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$")]


def public_base(request: Request, settings: Settings) -> str:
    """The URL fhir-cm is reached at: ``FHIR_CM_PUBLIC_URL`` behind a proxy, else as called."""
    return (settings.public_url or str(request.base_url)).rstrip("/")


def verified(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> cds.VerifiedCall:
    """The caller's JWT, checked before anything else of the request is read.

    The audience it must name is ``FHIR_CM_PUBLIC_URL``'s, never the URL as called: the ``Host`` a
    request carries is the caller's to write, and taken as ours it let a token the EHR signed for
    another CDS service (same issuer, that service's ``aud``) be replayed here naming that host."""
    if not settings.public_url:
        raise UnauthorizedProblem(
            "CDS Hooks are off: FHIR_CM_PUBLIC_URL is not set (the URL tokens must be addressed to)",
            error="invalid_token",
        )
    base = public_base(request, settings)
    called = base + request.url.path
    try:
        return cds.verify_call(
            request.headers.get("authorization"),
            {called, f"{base}/cds-services"},
            request.app.state.cds_keys,
            request.app.state.cds_jtis,
        )
    except cds.CdsUnauthorized as exc:
        raise UnauthorizedProblem(str(exc), error="invalid_token") from None


Caller = Annotated[cds.VerifiedCall, Depends(verified)]

#: Who the audit log names for a case an EHR's accepted card made (the EHR itself is in the detail).
CDS_PRINCIPAL = "cds-hooks"


def _service(service_id: str) -> cds.Service:
    found = cds.service(service_id)
    if found is None:
        raise NotFoundProblem(f"no CDS service {service_id!r} here; GET /cds-services lists them")
    return found


@router.get("", response_model=cds.Services, summary="CDS Hooks discovery")
def discovery(_caller: Caller) -> cds.Services:
    """The services on offer, the hook each answers and the data each asks the EHR to prefetch."""
    return cds.catalogue()


@router.post("/{service_id}", response_model=cds.CardsResponse, response_model_exclude_none=True, summary="Call a hook")
async def call_service(
    _caller: Caller,
    service_id: ServiceId,
    body: Annotated[cds.HookRequest, Body()],
    request: Request,
    store: Annotated[Store, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
    today: Today,
) -> cds.CardsResponse:
    """The cards for this hook call (none when the service has nothing to say); 412 when the patient's
    record was neither prefetched nor read from the EHR's server within ``FHIR_CM_CDS_DEADLINE``."""
    svc = _service(service_id)
    if body.hook != svc.hook:
        raise InvalidInput(f"service {service_id} answers the {svc.hook} hook, not {body.hook}")
    try:
        return await cds.answer(store, settings, service_id, body, today, public_base(request, settings))
    except cds.CdsRequestError as exc:
        raise InvalidInput(str(exc)) from None
    except cds.CdsDataUnavailable as exc:
        raise DataUnavailable(str(exc)) from None


@router.post("/{service_id}/feedback", summary="What the clinician did with the cards")
def feedback(
    request: Request,
    caller: Caller,
    service_id: ServiceId,
    body: Annotated[cds.FeedbackRequest, Body()],
    store: Annotated[Store, Depends(get_store)],
    settings: Annotated[Settings, Depends(get_settings)],
    today: Today,
) -> dict[str, list[str | None]]:
    """Recorded per card (accepted or overridden, with the reason); an accepted referral suggestion makes
    the referred case, whose id is returned in ``cases`` (one entry per feedback entry). Feedback naming
    a card this service never issued, or accepting a suggestion the card never made, is refused (422,
    each such ``feedback.<n>.card`` or ``feedback.<n>.acceptedSuggestions`` named) and none of it is
    recorded."""
    _service(service_id)
    request_id = getattr(request.state, "request_id", None)

    def audit(session: Session, created: list[str]) -> None:
        # No API key here: the caller is the EHR whose token was verified, named by its issuer (not PHI).
        detail = f"issuer {caller.issuer}; service {service_id}"
        record_audit(
            session,
            principal=CDS_PRINCIPAL,
            action="cds-referral",
            case_ids=created,
            detail=detail,
            request_id=request_id,
        )

    try:
        return {"cases": cds.take_feedback(store, service_id, body, today, then=audit, configured=settings.fhir_base)}
    except cds.UnknownCard as exc:
        why = "no card of this service has this uuid" if exc.field == "card" else "the card made no such suggestion"
        unknown = [FieldError(field=f"feedback.{n}.{exc.field}", message=why) for n in exc.entries]
        raise InvalidInput(str(exc), errors=unknown) from None
