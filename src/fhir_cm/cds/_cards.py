"""The cards: eligible for case management, in an open case, transition plan needed — and feedback.

``patient-view``: a patient in an open case gets "Open case with <manager>; next follow-up due
<date>" (and, after a discharge the tracker recorded in the last 30 days, the transition-plan card of
the same rule ``encounter-discharge`` applies); anyone else is assessed against the eligibility rules
(``fhir_cm.identify``) on the prefetched data, and an eligible patient gets a card with the reasons
and a suggestion to create the referral (a ServiceRequest the EHR writes). ``encounter-discharge``:
a patient in an open case gets "Transition plan needed" with the follow-up due and links to the
transfer summary and the case. Feedback accepting a referral suggestion makes the ``referred`` case
(idempotent, like enrolment); every outcome is recorded.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from typing import Any

from ..config import Settings
from ..domain import Case, CaseStatus, EligibilityReason, Party, PartyKind, Period, ProgrammeType, StatusChange
from ..identify import Assessment, assess, facts_from_resources, load_rules
from ..store import (
    IssuedCard,
    Store,
    card_issued,
    get_case,
    list_cases,
    record_card,
    record_feedback,
    save_case,
)
from ..sync import TransitionPlan, transition_plan
from ._models import Action, Card, CardsResponse, Coding, FeedbackRequest, HookRequest, Link, Source, Suggestion
from ._services import CdsRequestError, gather, service, settings_of

__all__ = ["answer", "take_feedback"]

_OPEN = [CaseStatus.REFERRED, CaseStatus.WAITLIST, CaseStatus.ACTIVE, CaseStatus.ON_HOLD]


def _source() -> Source:
    data = settings_of()["source"]
    return Source(label=data["label"], topic=Coding.model_validate(data["topic"]))


def _summary(text: str) -> str:
    return text if len(text) < 140 else text[:138] + "…"


def _manager(case: Case) -> str:
    manager = case.case_manager
    if manager is None:
        return "no case manager yet"
    return manager.name or f"case manager {manager.id}"


def _open_case(store: Store, patient_id: str) -> Case | None:
    with store.session(read_only=True) as s:
        cases = list_cases(s, patient=patient_id, status=_OPEN)
    return max(cases, key=lambda c: c.period.start) if cases else None


def _links(base: str, case: Case, plan: TransitionPlan | None = None) -> list[Link]:
    links = [Link(label="Open the case in fhir-cm", url=f"{base}/console/#case/{case.id}")]
    if plan is not None and plan.move is not None:
        links.append(
            Link(
                label="Transfer summary for the next setting",
                url=f"{base}/api/v1/cases/{case.id}/transitions/{plan.move}/summary",
            )
        )
    return links


def _open_case_card(base: str, case: Case, today: dt.date) -> Card:
    plan_due = transition_plan(case, today, discharged_on=today)
    due = plan_due.follow_up_due if plan_due else None
    text = f"Open case with {_manager(case)}" + (f"; next follow-up due {due.isoformat()}" if due else "")
    return Card(
        uuid=str(uuidlib.uuid4()),
        summary=_summary(text),
        detail=f"Programme: {case.programme.value}; status: {case.status.value} since {case.period.start.isoformat()}.",
        indicator="info",
        source=_source(),
        links=_links(base, case),
    )


def _plan_card(base: str, case: Case, plan: TransitionPlan) -> Card:
    due = f"; follow-up due {plan.follow_up_due.isoformat()}" if plan.follow_up_due else "; no follow-up planned yet"
    overdue = " (overdue)" if plan.follow_up_overdue else ""
    where = f" from {plan.from_setting.value}" if plan.from_setting else ""
    to = f" to {plan.to_setting.value}" if plan.to_setting else ""
    return Card(
        uuid=str(uuidlib.uuid4()),
        summary=_summary(f"Transition plan needed: case with {_manager(case)}{due}{overdue}"),
        detail=f"Discharged{where}{to} on {plan.discharged_on.isoformat()}. Agree the follow-up and send the "
        "transfer summary to the receiving setting.",
        indicator="warning",
        source=_source(),
        links=_links(base, case, plan),
    )


def _referral(patient_id: str, assessment: Assessment, today: dt.date) -> dict[str, Any]:
    referral = settings_of()["referral"]
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [referral["category"]]}],
        "code": {"coding": [referral["code"]], "text": referral["text"]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": today.isoformat(),
        "reasonCode": [{"text": r.text} for r in assessment.reasons],
    }


def _eligible_card(patient_id: str, assessment: Assessment, today: dt.date) -> Card:
    reasons = "; ".join(r.text for r in assessment.reasons)
    detail = "\n".join(f"- {r.text}" for r in assessment.reasons)
    return Card(
        uuid=str(uuidlib.uuid4()),
        summary=_summary(f"Eligible for case management: {reasons}"),
        detail=f"Score {assessment.score} by the programme's eligibility rules:\n\n{detail}",
        indicator="info",
        source=_source(),
        suggestions=[
            Suggestion(
                label="Refer to case management",
                uuid=str(uuidlib.uuid4()),
                isRecommended=True,
                actions=[
                    Action(
                        type="create",
                        description="Create the referral to case management",
                        resource=_referral(patient_id, assessment, today),
                    )
                ],
            )
        ],
        selectionBehavior="at-most-one",
    )


async def answer(
    store: Store, settings: Settings, service_id: str, request: HookRequest, today: dt.date, base: str
) -> CardsResponse:
    """The cards of one hook call (``base``: the public URL of fhir-cm, for links)."""
    svc = service(service_id)
    assert svc is not None  # the route checked
    patient_id = request.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise CdsRequestError("context.patientId is required")
    if svc.hook == "encounter-discharge":
        case = _open_case(store, patient_id)
        if case is None:
            return CardsResponse()
        plan = transition_plan(case, today, discharged_on=today)
        return CardsResponse(cards=[_plan_card(base, case, plan)] if plan else [])
    found, _missing = await gather(request, svc, verify=settings.verify_tls)
    case = _open_case(store, patient_id)
    if case is not None:
        cards = [_open_case_card(base, case, today)]
        recent = transition_plan(case, today)
        if recent is not None:
            cards.append(_plan_card(base, case, recent))
        return CardsResponse(cards=cards)
    resources = [r for rs in found.values() for r in rs]
    assessment = assess(facts_from_resources(patient_id, resources), load_rules(), today)
    if not assessment.eligible:
        return CardsResponse()
    card = _eligible_card(patient_id, assessment, today)
    with store.session() as s:
        record_card(
            s,
            IssuedCard(
                uuid=card.uuid,
                service_id=service_id,
                kind="eligible",
                patient_id=patient_id,
                eligibility=[r.value for r in assessment.eligibility],
                reasons=[r.model_dump(mode="json") for r in assessment.reasons],
            ),
        )
    return CardsResponse(cards=[card])


def take_feedback(store: Store, service_id: str, feedback: FeedbackRequest, today: dt.date) -> list[str | None]:
    """Record each card's outcome; an accepted referral suggestion makes the referred case. Returns,
    per entry, the case made or found (None where none was)."""
    made: list[str | None] = []
    with store.session() as s:
        for entry in feedback.feedback:
            case_id = None
            issued = card_issued(s, entry.card)
            if entry.outcome == "accepted" and entry.acceptedSuggestions and issued and issued.kind == "eligible":
                case_id = _referred_case(s, issued, today)
            record_feedback(
                s,
                service_id=service_id,
                card_uuid=entry.card,
                outcome=entry.outcome,
                accepted=[a.id for a in entry.acceptedSuggestions],
                override_reason=entry.overrideReason.model_dump(mode="json") if entry.overrideReason else None,
                outcome_at=entry.outcomeTimestamp,
                case_id=case_id,
            )
            made.append(case_id)
    return made


def _referred_case(session: Any, issued: IssuedCard, today: dt.date) -> str:
    existing = list_cases(session, patient=issued.patient_id, status=_OPEN)
    if existing:
        return existing[0].id
    words = "; ".join(str(r.get("text")) for r in issued.reasons)
    case = Case(
        id=uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"cds-card:{issued.uuid}").hex,
        programme=ProgrammeType.HEALTH_CARE,
        status=CaseStatus.REFERRED,
        status_history=[
            StatusChange(status=CaseStatus.REFERRED, start=today, reason=f"referred from the EHR: {words}"[:1000])
        ],
        period=Period(start=today),
        patient=Party(kind=PartyKind.PATIENT, id=issued.patient_id),
        eligibility=[EligibilityReason(e) for e in issued.eligibility],
    )
    if get_case(session, case.id) is None:
        save_case(session, case)
    return case.id
