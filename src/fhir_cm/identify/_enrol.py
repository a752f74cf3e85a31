"""Candidates become cases: ``referred``, with the eligibility reasons that made them candidates.

A supervisor picks candidates (or the top N); each becomes a case in status ``referred`` on the day,
with its patient, its eligibility reasons and the screening's reasons in words as the status
change's reason, saved and queued for push like any other case. Enrolling is idempotent: a patient
already in an open case (of any programme) is skipped with that reason, and a case id is derived
from the server, the patient and the day, so enrolling the same candidates twice makes nothing twice.
A case that enrolment made that day and that has ended since (cancelled: enrolled into the wrong
programme) keeps its id; enrolling the patient again takes the next id derived, for a case of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Collection, Sequence

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..domain import Case, CaseStatus, EligibilityReason, Party, PartyKind, Period, ProgrammeType, StatusChange
from ..store import (
    CandidateRecord,
    Store,
    get_case,
    list_candidates,
    mark_enrolled,
    clashing_patient_ids,
    open_case_patient_ids,
    save_case,
)

__all__ = ["EnrolReport", "EnrolledCase", "enrol_candidates"]

#: The longest reason text kept on the status change.
_REASON_TEXT = 1_000


class EnrolledCase(BaseModel):
    patient_id: str
    case_id: str
    eligibility: list[EligibilityReason]


class EnrolReport(BaseModel):
    """What enrolment made, and why the other chosen patients were not enrolled."""

    enrolled: list[EnrolledCase] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict, description="Patient id → why not enrolled.")


def case_id_for(server_base: str, patient_id: str, on: dt.date, again: int = 0) -> str:
    """The id of the case enrolment makes: the same server, patient and day give the same id;
    ``again`` (1, 2, …) the ids of the day's later enrolments of the patient, once the earlier ended."""
    seed = f"{server_base.rstrip('/')}|{patient_id}|{on.isoformat()}" + (f"|{again}" if again else "")
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def enrol_candidates(
    store: Store,
    server_base: str,
    *,
    patient_ids: Sequence[str] = (),
    top: int = 0,
    programme: ProgrammeType = ProgrammeType.HEALTH_CARE,
    as_of: dt.date | None = None,
    then: Callable[[Session, EnrolReport], None] | None = None,
    among: Collection[str] | None = None,
) -> EnrolReport:
    """Enrol the candidates named (``patient_ids``) and/or the ``top`` N by score not yet enrolled
    (``among``: the top N of these patients only — a Group's members, after its screening).

    ``then`` runs in the same transaction once the cases are saved (the API's audit rows).
    """
    on = as_of or dt.date.today()
    report = EnrolReport()
    with store.session() as s:
        chosen: dict[str, CandidateRecord | None] = dict.fromkeys(patient_ids)
        if patient_ids:
            named = set(patient_ids)
            offset = 0
            while named - {p for p, c in chosen.items() if c is not None}:
                page = list_candidates(s, server_base, limit=500, offset=offset)
                if not page:
                    break
                for c in page:
                    if c.patient_id in named:
                        chosen[c.patient_id] = c
                offset += len(page)
        if top > 0:
            offset, taken = 0, 0
            while taken < top:
                # In an open case since the screening (made by hand, pulled, in any programme): no
                # place among the top N, which would enrol fewer while others wait.
                page = list_candidates(s, server_base, limit=max(top, 50), offset=offset, free_only=True, among=among)
                if not page:
                    break
                for c in page:
                    if taken < top and c.case_id is None and c.patient_id not in chosen:
                        chosen[c.patient_id] = c
                        taken += 1
                offset += len(page)
        in_case = open_case_patient_ids(s, chosen, server_base=server_base)
        clashing = clashing_patient_ids(s, [server_base], chosen)
        for patient_id, candidate in chosen.items():
            if candidate is None:
                report.skipped[patient_id] = "not a candidate of the last screening of this server"
                continue
            if patient_id in in_case:
                report.skipped[patient_id] = "already in an open case"
                continue
            if patient_id in clashing:  # a case under the id would be one patient with ours
                report.skipped[patient_id] = "the id is ours for another patient, whom this server knows by another id"
                continue
            case = _case_of(candidate, programme, on, _free_id(s, candidate, on))
            if get_case(s, case.id) is None:
                save_case(s, case)
            mark_enrolled(s, server_base, patient_id, case.id)
            report.enrolled.append(EnrolledCase(patient_id=patient_id, case_id=case.id, eligibility=case.eligibility))
        if then is not None:
            then(s, report)
    return report


def _free_id(session: Session, candidate: CandidateRecord, on: dt.date) -> str:
    """The first of the day's ids for the patient that names no case, or an open one (the patient is in
    no open case here, so that one is being made by an enrolment running alongside: the same case).

    A case that has ended keeps its id: naming it as made would enrol the patient into a cancelled
    case, of the programme chosen then (out of sight of a supervisor of another)."""
    again = 0
    while True:
        case_id = case_id_for(candidate.server_base, candidate.patient_id, on, again)
        held = get_case(session, case_id)
        if held is None or held.is_open:
            return case_id
        again += 1


def _case_of(candidate: CandidateRecord, programme: ProgrammeType, on: dt.date, case_id: str) -> Case:
    reasons = [EligibilityReason(r["reason"]) for r in candidate.reasons]
    words = "; ".join(str(r["text"]) for r in candidate.reasons)
    return Case(
        id=case_id,
        programme=programme,
        status=CaseStatus.REFERRED,
        status_history=[
            StatusChange(
                status=CaseStatus.REFERRED,
                start=on,
                reason=f"identified by screening (score {candidate.score}): {words}"[:_REASON_TEXT],
            )
        ],
        period=Period(start=on),
        patient=Party(kind=PartyKind.PATIENT, id=candidate.patient_id),
        eligibility=list(dict.fromkeys(reasons)),
    )
