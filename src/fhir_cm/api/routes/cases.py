"""Cases: create, read, list with filters, change status (with the reason), close, edit own fields."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Response, status
from pydantic import ValidationError

from fhir_cm.domain import (
    Breach,
    Case,
    CaseStatus,
    CaseTransitionError,
    Party,
    PartyKind,
    Period,
    ProgrammeType,
    allowed_referral_moves,
    with_dates_as_written,
)
from fhir_cm.store import (
    ApiRole,
    CaseRecord,
    UnreadableCase,
    get_case_record,
    list_case_records,
    record_audit,
    save_case,
)

from .._answers import json_answer
from .._case_json import page_json
from .._access import can_see, check_may_create, check_may_reassign, may_see_unreadable, programme_scope
from .._casework import audit_reads, etag, rebuild, refuse_breaches, sent_fields
from .._deps import CaseWork
from .._models import (
    OPEN_STATUSES,
    CaseCreate,
    CaseOut,
    CasePage,
    CaseUpdate,
    CloseIn,
    EntityId,
    StatusChangeIn,
)
from .._problems import ConflictProblem, FieldError, InvalidInput, field_errors
from .._requester import with_requesters
from .._routing import api_router
from .._team import check_new_team

__all__ = ["CaseId", "case_out", "router"]

router = api_router(prefix="/cases", tags=["cases"])

CaseId = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="The case id.")]
MAX_PAGE = 200


def case_out(record: CaseRecord) -> CaseOut:
    """The response body of a stored case."""
    return CaseOut(
        case=record.case,
        revision=record.revision,
        created_at=record.created_at,
        updated_at=record.updated_at,
        transitions=with_dates_as_written(record.case, record.case.transitions, record.dates_as_written),
    )


def _read_out(record: CaseRecord) -> CaseOut:
    out = case_out(record)
    # The map stored with the case, which its revision covers: a read worked out from the resources could
    # differ from it, and a pull setting the row right then moved the ETag while the read stayed the same.
    out.dates_as_written = dict(record.dates_as_written)
    return out


def _fresh(work: CaseWork, case_id: str) -> Response:
    record = work.load(case_id)
    return json_answer(
        work.case_json.of(work.store, record, "read", _read_out), headers={"ETag": etag(record.revision)}
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CaseOut, summary="Create a case")
def create_case(body: CaseCreate, work: CaseWork, response: Response) -> CaseOut:
    """Enrol a patient in a programme. A case manager's new case is theirs (``case_manager`` defaults to them)."""
    data = body.model_dump(exclude_none=True, exclude={"start"})
    principal = work.principal
    if body.case_manager is None and principal.role is ApiRole.CASE_MANAGER and principal.practitioner_id:
        data["case_manager"] = Party(kind=PartyKind.PRACTITIONER, id=principal.practitioner_id)
    data["period"] = Period(start=body.start or work.today)
    try:
        case = Case.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("the case is not valid", errors=field_errors(exc.errors(), hint="case")) from None
    check_may_create(principal, case)
    check_new_team(case)
    case = with_requesters(principal, case)
    if work.rules is not None:
        refuse_breaches(None, case, work.rules)
    with work.store.session() as session:
        if get_case_record(session, case.id) is not None:
            raise ConflictProblem(f"a case with id {case.id} already exists")
        revision = save_case(session, case, expected_revision=0)
        record_audit(
            session, principal=work.principal.id, action="create", case_ids=[case.id], request_id=work.request_id
        )
        record = get_case_record(session, case.id)
    assert record is not None
    response.headers["ETag"] = etag(revision)
    response.headers["Location"] = f"/api/v1/cases/{case.id}"
    return case_out(record)


@router.get("", response_model=CasePage, summary="List cases")
def list_cases_route(
    work: CaseWork,
    status_: Annotated[list[CaseStatus] | None, Query(alias="status", description="Repeat for several.")] = None,
    open_only: Annotated[
        bool, Query(alias="open", description="Only open cases (referred, waitlist, active, on hold).")
    ] = False,
    programme: ProgrammeType | None = None,
    case_manager: Annotated[EntityId | None, Query(description="Practitioner id of the case manager.")] = None,
    patient: Annotated[EntityId | None, Query(description="Patient id.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> Response:
    """The cases the caller may see that match every filter given, ordered by id."""
    statuses: list[CaseStatus] | None = list(status_) if status_ else None
    if open_only:
        statuses = [s for s in (statuses or OPEN_STATUSES) if s in OPEN_STATUSES]
    scope = programme_scope(work.principal)
    if scope is not None and programme not in (None, scope):
        return json_answer(CasePage(items=[], limit=limit, offset=offset, next_offset=None))
    if statuses == []:  # open=true with only closed statuses asked for: nothing can match
        return json_answer(CasePage(items=[], limit=limit, offset=offset, next_offset=None))
    filters: dict[str, Any] = {
        "status": statuses,
        "programme": programme or scope,
        "case_manager": case_manager,
        "patient": patient,
    }
    # A case this version cannot read is left out, and counted for whoever could see it (a page of a
    # supervisor's may then hold fewer than ``limit``; the next one starts where the store's did).
    skipped: list[UnreadableCase] = []
    with work.store.session(read_only=True) as session:
        if work.principal.role is ApiRole.SUPERVISOR:
            # A supervisor sees whole programmes, which the store filters on: page there.
            found = list_case_records(
                session, **filters, limit=limit + 1, offset=offset, cache=work.store.cases, skipped=skipped
            )
            if len(found) + len(skipped) > limit:  # the row past the page: not on it, nor counted
                last = max([r.case.id for r in found] + [u.case_id for u in skipped])
                found = [r for r in found if r.case.id != last]
                skipped = [u for u in skipped if u.case_id != last]
                more = True
            else:
                more = False
            records = found
        else:
            # Team membership lives inside the case: filter here, then page.
            visible = [
                r
                for r in list_case_records(session, **filters, cache=work.store.cases, skipped=skipped)
                if can_see(work.principal, r.case, work.today)
            ]
            records, more = visible[offset : offset + limit], offset + limit < len(visible)
    audit_reads(work.store, work.principal, (r.case.id for r in records), action="list", request_id=work.request_id)
    items = [work.case_json.of(work.store, r, "item", case_out) for r in records]
    unreadable = sum(may_see_unreadable(work.principal, u) for u in skipped)
    frame = CasePage(
        items=[], limit=limit, offset=offset, next_offset=offset + limit if more else None, unreadable=unreadable
    )
    return json_answer(page_json(frame, items))


@router.get("/{case_id}", response_model=CaseOut, summary="Read a case")
def read_case(case_id: CaseId, work: CaseWork) -> Response:
    """The case with its revision in ``ETag``; 404 if it does not exist or the caller may not see it.

    The dates its sources wrote as a year or a month are said as written (``dates_as_written``)."""
    return _fresh(work, case_id)


@router.patch("/{case_id}", response_model=CaseOut, summary="Change a case's own fields")
def update_case(case_id: CaseId, body: CaseUpdate, work: CaseWork, response: Response) -> CaseOut:
    """Acuity, plan summary, eligibility, referral source; a supervisor may also reassign the case manager."""
    changes = body.model_dump(exclude_unset=True)
    if "case_manager" in changes:
        check_may_reassign(work.principal)

    def change(case: Case) -> tuple[Case, None]:
        if "case_manager" in changes:  # handed over today: the team records who had the case when
            case = case.model_copy(deep=True)
            case.hand_over(body.case_manager, work.today)
        return rebuild(case, next(iter(changes), "case"), **changes), None

    edited = work.edit(case_id, change, action="update", detail=sent_fields(changes))
    response.headers["ETag"] = etag(edited.revision)
    return case_out(edited.record)


@router.post("/{case_id}/status", response_model=CaseOut, summary="Change a case's status")
def change_status(case_id: CaseId, body: StatusChangeIn, work: CaseWork, response: Response) -> CaseOut:
    """Move the case to a new status on a day, with the reason; the history keeps where it was.

    A case is closed or cancelled once its referrals have ended (409 ``open_referrals`` otherwise). A
    case entered in error stays so: any move from there is a 409 (``allowed`` empty).
    """
    on = body.on or work.today

    def change(case: Case) -> tuple[Case, None]:
        if case.status is body.status:
            raise ConflictProblem(f"case {case.id} is already '{body.status}'")
        updated = case.model_copy(deep=True)
        try:
            updated.change_status(body.status, on, body.reason)
        except CaseTransitionError as exc:  # final, as a referral's end is: nothing is allowed from there
            raise ConflictProblem(str(exc), extra={"current": case.status, "allowed": []}) from None
        except ValidationError as exc:
            raise InvalidInput(
                "the status change would make the case invalid", errors=field_errors(exc.errors(), hint="status")
            ) from None
        except ValueError as exc:  # the day is before the current status began
            raise InvalidInput(str(exc), errors=[FieldError(field="on", message=str(exc))]) from None
        _check_referrals_settled(case, body.status)
        return updated, None

    edited = work.edit(case_id, change, action="status", detail=f"status:{body.status}", name=_status_field)
    response.headers["ETag"] = etag(edited.revision)
    return case_out(edited.record)


def _check_referrals_settled(case: Case, status: CaseStatus) -> None:
    """Refuse (409) ending a case whose referrals are still open: the organisations asked would go on
    working a referral (its Task still requested, accepted or in progress) for a case that has ended. Each
    is completed, cancelled, … first; ``open_referrals`` names them with their status."""
    if status not in (CaseStatus.CLOSED, CaseStatus.CANCELLED):
        return
    still = [{"id": r.id, "status": r.status} for r in case.referrals if allowed_referral_moves(r.status)]
    if still:
        raise ConflictProblem(
            f"case {case.id} has {len(still)} open referral(s): move each to an end (completed, cancelled, …) "
            f"before the case is {status}",
            extra={"open_referrals": still},
        )


def _status_field(breach: Breach) -> str:
    """A status change only writes its day into the history and the period: a breach there is ``on``."""
    return "on" if breach.field.startswith(("status_history.", "period.")) else breach.field


@router.post("/{case_id}/close", response_model=CaseOut, summary="Close a case")
def close_case(case_id: CaseId, body: CloseIn, work: CaseWork, response: Response) -> CaseOut:
    """Close the case on a day (period end), with the reason; a closed case is no longer open.

    Its referrals must have ended first (409 ``open_referrals`` naming those still open).
    """
    status_in = StatusChangeIn(status=CaseStatus.CLOSED, on=body.on, reason=body.reason)
    return change_status(case_id, status_in, work, response)
