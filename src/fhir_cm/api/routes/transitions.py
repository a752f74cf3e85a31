"""Stays in care settings and the transitions between them.

A transition is derived from a case's stays (the domain's ``derive_transitions``), so entering one
by hand means entering the stay: ``POST /cases/{id}/stays`` (e.g. an admission the tracker cannot
see), then ``PATCH`` it with its end and discharge disposition. The transitions tracker records
what it found from the FHIR server's Encounters in the store; both views are served here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Response, status
from fastapi.responses import JSONResponse

from fhir_cm.config import Settings
from fhir_cm.sync import NoSuchMove, stored_transfer_summary

from fhir_cm.domain import Stay, with_dates_as_written
from fhir_cm.store import CaseRecord, RecordedTransition, list_transitions

from .._access import visible_record
from .._casework import (
    Edited,
    add_entity,
    audit_reads,
    listed,
    patched,
    respond,
    sent_fields,
    update_entity,
)
from .._deps import CaseWork, get_settings
from .._problems import NotFoundProblem
from .._models import EntityId, StayUpdate, TransitionsOut
from .._routing import api_router
from .cases import CaseId
from .plan import EntityPath

__all__ = ["router"]

router = api_router(tags=["stays and transitions"])


@router.get("/cases/{case_id}/stays", response_model=list[Stay], summary="List a case's stays")
def list_stays(case_id: CaseId, work: CaseWork, response: Response) -> list[Stay]:
    """The stays in care settings, oldest first."""
    stays: list[Stay] = listed(work, case_id, "stays", response)
    return sorted(stays, key=lambda s: (s.start, s.id))


@router.post("/cases/{case_id}/stays", response_model=Stay, status_code=status.HTTP_201_CREATED, summary="Enter a stay")
def add_stay(case_id: CaseId, body: Stay, work: CaseWork, response: Response) -> Stay:
    """Manual entry of a stay in a care setting; the transitions it implies follow from it."""
    return respond(add_entity(work, case_id, "stays", body, "stay"), response)


@router.patch("/cases/{case_id}/stays/{stay_id}", response_model=Stay, summary="Change a stay (e.g. discharge)")
def update_stay(case_id: CaseId, stay_id: EntityPath, body: StayUpdate, work: CaseWork, response: Response) -> Stay:
    """Record a discharge (``status: finished``, ``end``, ``discharge_disposition``) or correct a stay."""
    changes = body.model_dump(exclude_unset=True)
    edited: Edited[Stay] = update_entity(
        work,
        case_id,
        "stays",
        stay_id,
        "stay",
        lambda s: patched(s, changes, "stays"),
        what_changed=sent_fields(changes),
    )
    return respond(edited, response)


@router.get("/cases/{case_id}/transitions", response_model=TransitionsOut, summary="A case's transitions")
def case_transitions(case_id: CaseId, work: CaseWork) -> TransitionsOut:
    """Moves between care settings: derived from the stays now, and as the tracker recorded them. A
    follow-up the hospital wrote as due in a month or a year is said as written
    (``follow_up_due_as_written``; ``follow_up_due`` is the last day of it)."""
    record = work.load(case_id)
    with work.store.session(read_only=True) as session:
        recorded = list_transitions(session, case_id)
    case, written = record.case, record.dates_as_written
    return TransitionsOut(
        case_id=case_id,
        derived=with_dates_as_written(case, case.transitions, written),
        recorded=with_dates_as_written(case, recorded, written),
    )


@router.get(
    "/cases/{case_id}/transitions/{move}/summary",
    summary="A move's transfer summary (PACIO document Bundle)",
    response_class=JSONResponse,
    responses={200: {"content": {"application/fhir+json": {}}, "description": "A FHIR document Bundle."}},
)
def transfer_summary_document(
    case_id: CaseId,
    move: Annotated[
        int,
        Path(
            ge=1,
            le=1000,
            description="The move's number among the case's moves out of a "
            "hospital, SNF or rehabilitation stay, oldest first.",
        ),
    ],
    work: CaseWork,
    settings: Annotated[Settings, Depends(get_settings)],
    fhir_version: Annotated[Literal["R4", "R5"], Query(alias="fhirVersion")] = "R4",
) -> JSONResponse:
    """The PACIO Transitions of Care transfer summary of the case's ``move``-th move out of a hospital,
    skilled nursing or rehabilitation stay: a FHIR ``document`` Bundle whose Composition (LOINC
    18761-7) has the 15 sections, with the case's plan of care, problems, reason for referral, goals
    and care team, and an ``emptyReason`` where the case holds nothing. 404 when there is no such move."""
    record = work.load(case_id)
    try:
        with work.store.session(read_only=True) as session:
            document = stored_transfer_summary(session, record.case, move, fhir_version, settings.identifier_system)
    except NoSuchMove as exc:
        raise NotFoundProblem(str(exc)) from None
    return JSONResponse(document, media_type="application/fhir+json")


@router.get("/transitions", response_model=list[RecordedTransition], summary="Recorded transitions")
def recorded_transitions(
    work: CaseWork,
    case_id: Annotated[EntityId | None, Query(description="Only this case's.")] = None,
    readmission: Annotated[bool | None, Query(description="Only readmissions (true) or only others (false).")] = None,
) -> list[RecordedTransition]:
    """Transitions the tracker recorded, for the cases the caller may see, by case and date (a
    follow-up due written as a month or a year said as written, as for one case's)."""
    with work.store.session(read_only=True) as session:
        rows = list_transitions(session, case_id)
        seen: dict[str, tuple[bool, CaseRecord | None]] = {}
        for row in rows:
            if row.case_id not in seen:
                seen[row.case_id] = visible_record(session, work.principal, row.case_id, work.today)
    out = [
        t
        for r in rows
        if seen[r.case_id][0] and (readmission is None or r.readmission is readmission)
        for t in _as_written(r, seen[r.case_id][1])
    ]
    audit_reads(
        work.store, work.principal, (r.case_id for r in out), action="list-transitions", request_id=work.request_id
    )
    return out


def _as_written(recorded: RecordedTransition, record: CaseRecord | None) -> list[RecordedTransition]:
    return with_dates_as_written(record.case, [recorded], record.dates_as_written) if record else [recorded]
