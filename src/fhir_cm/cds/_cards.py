"""The cards: eligible for case management, in an open case, transition plan needed — and feedback.

``patient-view``: a patient in an open case gets "Open case with <manager>; next follow-up due
<date>" (and, after a discharge the tracker recorded in the last 30 days, the transition-plan card of
the same rule ``encounter-discharge`` applies); anyone else is assessed against the eligibility rules
(``fhir_cm.identify``) on the prefetched data, and an eligible patient gets a card with the reasons
and a suggestion to create the referral (a ServiceRequest the EHR writes). ``encounter-discharge``:
a patient in an open case gets "Transition plan needed" with the follow-up due and links to the
transfer summary and the case. Every card answered is remembered by its uuid (``cds_cards``), since
feedback names a card by nothing else: feedback naming a card this service never issued is refused
(``UnknownCard``), and nothing of it is recorded. Feedback accepting a referral suggestion makes the
``referred`` case (idempotent, like enrolment); every outcome is recorded.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from ..config import Settings
from ..domain import (
    Case,
    CaseStatus,
    EligibilityReason,
    Party,
    PartyKind,
    Period,
    ProgrammeType,
    StatusChange,
    say_day,
)
from ..identify import Assessment, assess, facts_from_resources, load_rules
from ..mapping import FhirVersion, convert_resource, fhir_version_without_server
from ..store import (
    CaseRecord,
    IssuedCard,
    Store,
    UnreadableCase,
    card_issued,
    clashing_patient_ids,
    ehr_patient_keys,
    get_case,
    list_case_records,
    list_cases,
    record_card,
    record_feedback,
    save_case,
)
from ..sync import TransitionPlan, transition_plan
from ._models import Action, Card, CardsResponse, Coding, FeedbackRequest, HookRequest, Link, Source, Suggestion
from ._services import CdsDataUnavailable, CdsRequestError, context_patient, gather, service, settings_of

__all__ = ["UnknownCard", "answer", "suggestion_uuid", "take_feedback"]

_OPEN = [CaseStatus.REFERRED, CaseStatus.WAITLIST, CaseStatus.ACTIVE, CaseStatus.ON_HOLD]


class UnknownCard(CdsRequestError):
    """Feedback naming what this service never issued; ``entries`` are the places in the feedback list
    and ``field`` what each names wrongly: a ``card`` never issued, or ``acceptedSuggestions`` the card
    never made."""

    def __init__(self, entries: list[int], field: str = "card") -> None:
        what = "a card" if field == "card" else "a suggestion the card never made"
        super().__init__(f"feedback names {what} this service never issued (named by its uuid)")
        self.entries, self.field = entries, field


def suggestion_uuid(card_uuid: str) -> str:
    """The uuid of an eligibility card's suggestion, derived from the card's: feedback accepting a
    suggestion is checked against it without keeping it."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"cds-suggestion:{card_uuid}"))


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


def _open_case(store: Store, patient_id: str, servers: list[str]) -> CaseRecord | UnreadableCase | None:
    """The patient's newest open case (with its dates as written, stored beside it); else one this
    version cannot read (stored before a rule of the case model), if any: the patient is in case
    management, so no card may say otherwise.

    ``patient_id`` is the EHR's, matched through the ledger of ``servers`` (the caller's,
    ``_ledger_servers``) as ``store.ehr_patient_keys`` says: a case whose Patient a push created there is
    found by the id the server chose, and not by our own id, which there may be another person's."""
    skipped: list[UnreadableCase] = []
    with store.session(read_only=True) as s:
        ids = ehr_patient_keys(s, servers, [patient_id])
        cases = [c for pid in ids for c in list_case_records(s, patient=pid, status=_OPEN, skipped=skipped)]
    if cases:
        return max(cases, key=lambda c: c.case.period.start)
    return skipped[0] if skipped else None


def _ledger_servers(called_from: str | None, configured: str | None) -> list[str]:
    """The server whose ledger says which of our patients the EHR's patient id names: the call's
    ``fhirServer`` (the configured one when it is that server, however spelt: the ledger has the
    configured spelling), or the configured one when the call names none. Never the configured one
    for a call from another server: an id it gave a patient of ours names someone else there."""
    if not called_from:
        return [configured] if configured else []
    if configured and _server_key(called_from) == _server_key(configured):
        return [configured]
    return [called_from]


def _server_key(base: str) -> tuple[str, str, int | None, str]:
    """A base URL as a server: scheme and host in any case, a default port or a trailing slash alike."""
    try:
        parts = urlsplit(base.strip())
        port = parts.port
    except ValueError:  # a port that is no number: no server to match
        return (base, "", None, "")
    scheme = parts.scheme.lower()
    if port == {"http": 80, "https": 443}.get(scheme):
        port = None
    return (scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/"))


def _clashes(store: Store, patient_id: str, servers: list[str]) -> bool:
    """Whether the EHR's patient id is ours for a patient a push gave another id on its server: a
    referral of the EHR's patient would make a case under that id, one patient with ours."""
    with store.session(read_only=True) as s:
        return bool(clashing_patient_ids(s, servers, [patient_id]))


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


def _due(plan: TransitionPlan | None) -> str | None:
    """The plan's follow-up due as the hospital wrote it ("2024-06"), else the day."""
    if plan is None or plan.follow_up_due is None:
        return None
    return say_day(plan.follow_up_due, plan.follow_up_due_as_written)


def _open_case_card(base: str, record: CaseRecord, today: dt.date) -> Card:
    case = record.case
    due = _due(transition_plan(case, today, discharged_on=today, written=record.dates_as_written))
    text = f"Open case with {_manager(case)}" + (f"; next follow-up due {due}" if due else "")
    since = say_day(case.period.start, record.dates_as_written.get("/period/start"))
    return Card(
        uuid=str(uuidlib.uuid4()),
        summary=_summary(text),
        detail=f"Programme: {case.programme.value}; status: {case.status.value} since {since}.",
        indicator="info",
        source=_source(),
        links=_links(base, case),
    )


def _plan_card(base: str, case: Case, plan: TransitionPlan) -> Card:
    day = _due(plan)
    due = f"; follow-up due {day}" if day else "; no follow-up planned yet"
    overdue = " (overdue)" if plan.follow_up_overdue else ""
    where = f" from {plan.from_setting.value}" if plan.from_setting else ""
    to = f" to {plan.to_setting.value}" if plan.to_setting else ""
    return Card(
        uuid=str(uuidlib.uuid4()),
        summary=_summary(f"Transition plan needed: case with {_manager(case)}{due}{overdue}"),
        detail=f"Discharged{where}{to} on {say_day(plan.discharged_on, plan.discharged_on_as_written)}. Agree the follow-up and send the "
        "transfer summary to the receiving setting.",
        indicator="warning",
        source=_source(),
        links=_links(base, case, plan),
    )


def _referral(patient_id: str, assessment: Assessment, today: dt.date, version: FhirVersion) -> dict[str, Any]:
    """The ServiceRequest the EHR writes, in the FHIR version its server speaks (R5 names the reasons
    ``reason``, CodeableReferences, where R4 has ``reasonCode``: an R4 resource is refused there)."""
    referral = settings_of()["referral"]
    resource = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [{"coding": [referral["category"]]}],
        "code": {"coding": [referral["code"]], "text": referral["text"]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": today.isoformat(),
        "reasonCode": [{"text": r.text} for r in assessment.reasons],
    }
    return convert_resource(resource, "R4", version)


def _eligible_card(patient_id: str, assessment: Assessment, today: dt.date, version: FhirVersion) -> Card:
    reasons = "; ".join(r.text for r in assessment.reasons)
    detail = "\n".join(f"- {r.text}" for r in assessment.reasons)
    card_uuid = str(uuidlib.uuid4())
    return Card(
        uuid=card_uuid,
        summary=_summary(f"Eligible for case management: {reasons}"),
        detail=f"Score {assessment.score} by the programme's eligibility rules:\n\n{detail}",
        indicator="info",
        source=_source(),
        suggestions=[
            Suggestion(
                label="Refer to case management",
                uuid=suggestion_uuid(card_uuid),
                isRecommended=True,
                actions=[
                    Action(
                        type="create",
                        description="Create the referral to case management",
                        resource=_referral(patient_id, assessment, today, version),
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
    patient_id = context_patient(request)
    issued: list[tuple[Card, str]] = []
    servers = _ledger_servers(request.fhirServer, settings.fhir_base)
    if svc.hook == "encounter-discharge":
        record = _open_case(store, patient_id, servers)
        if isinstance(record, UnreadableCase):
            return _issue(store, service_id, patient_id, [])
        plan = (
            transition_plan(record.case, today, discharged_on=today, written=record.dates_as_written)
            if record is not None
            else None
        )
        if record is not None and plan is not None:
            issued.append((_plan_card(base, record.case, plan), "transition-plan"))
        return _issue(store, service_id, patient_id, issued)
    record = _open_case(store, patient_id, servers)
    if isinstance(record, UnreadableCase):  # no card rather than a wrong one (logged by the store, by id)
        return _issue(store, service_id, patient_id, [])
    if record is not None:
        issued.append((_open_case_card(base, record, today), "open-case"))
        recent = transition_plan(record.case, today, written=record.dates_as_written)
        if recent is not None:
            issued.append((_plan_card(base, record.case, recent), "transition-plan"))
        return _issue(store, service_id, patient_id, issued)
    if _clashes(store, patient_id, servers):  # no card rather than a referral merging two people
        return _issue(store, service_id, patient_id, [])
    # Only eligibility reads the EHR's data: a patient in a case is answered from the store alone, so
    # neither a server down nor a scope the token lacks keeps their case manager from the clinician.
    data = await gather(request, svc, verify=settings.verify_tls, deadline=settings.cds_deadline)
    if not _has_record(data.resources, patient_id):
        # Whether the patient died or was merged into another record is read from their Patient alone:
        # without it no referral is suggested (no card rather than a deceased patient's referral).
        if data.failed:  # 412, as CDS Hooks 2.0 has it: the EHR learns why there is no answer
            raise CdsDataUnavailable("; ".join(data.failed.values()))
        return _issue(store, service_id, patient_id, [])
    assessment = assess(facts_from_resources(patient_id, data.resources, bases=data.bases), load_rules(), today)
    if assessment.eligible:
        # The EHR's server is the one FHIR_CM_FHIR_VERSION names; with "auto", R4 (its /metadata is not read).
        version = fhir_version_without_server(settings.fhir_version)
        issued.append((_eligible_card(patient_id, assessment, today, version), "eligible"))
    return _issue(store, service_id, patient_id, issued, assessment, server=request.fhirServer)


def _has_record(resources: list[dict[str, Any]], patient_id: str) -> bool:
    """Whether the data gathered holds the Patient resource of the patient the call is about."""
    return any(r.get("resourceType") == "Patient" and r.get("id") == patient_id for r in resources)


def _issue(
    store: Store,
    service_id: str,
    patient_id: str,
    issued: list[tuple[Card, str]],
    assessment: Assessment | None = None,
    *,
    server: str | None = None,
) -> CardsResponse:
    """The cards answered, each remembered first with its kind (an eligibility card with the
    assessment's reasons, for the case its accepted suggestion makes) and the call's ``fhirServer``
    (``server``: the patient id is that server's, and feedback names no server)."""
    if issued:
        with store.session() as s:
            for card, kind in issued:
                record = IssuedCard(
                    uuid=card.uuid, service_id=service_id, kind=kind, patient_id=patient_id, server_base=server
                )
                if kind == "eligible" and assessment is not None:
                    record.eligibility = [r.value for r in assessment.eligibility]
                    record.reasons = [r.model_dump(mode="json") for r in assessment.reasons]
                record_card(s, record)
    return CardsResponse(cards=[card for card, _ in issued])


def take_feedback(
    store: Store,
    service_id: str,
    feedback: FeedbackRequest,
    today: dt.date,
    *,
    then: Callable[[Session, list[str]], None] | None = None,
    configured: str | None = None,
) -> list[str | None]:
    """Record each card's outcome; an accepted referral suggestion makes the referred case. Returns,
    per entry, the case made or found (None where none was). Raises ``UnknownCard``, recording
    nothing, when an entry names a card this service did not issue, or accepts a suggestion its card
    did not make. ``then`` gets the cases made, in the transaction that makes them (the API's audit).
    ``configured``: the configured server; the ledger saying which case the card's patient id is, is
    that of the server the card's call named (feedback names none), as for the cards."""
    made: list[str | None] = []
    created: list[str] = []
    with store.session() as s:
        cards = [card_issued(s, entry.card) for entry in feedback.feedback]
        unknown = [n for n, card in enumerate(cards) if card is None or card.service_id != service_id]
        if unknown:
            raise UnknownCard(unknown)
        made_up = [
            n
            for n, (entry, card) in enumerate(zip(feedback.feedback, cards, strict=True))
            if card is not None
            and any(card.kind != "eligible" or a.id != suggestion_uuid(card.uuid) for a in entry.acceptedSuggestions)
        ]
        if made_up:
            raise UnknownCard(made_up, "acceptedSuggestions")
        for entry, issued in zip(feedback.feedback, cards, strict=True):
            case_id = None
            assert issued is not None
            if entry.outcome == "accepted" and entry.acceptedSuggestions and issued.kind == "eligible":
                servers = _ledger_servers(issued.server_base, configured)
                case_id, new = _referred_case(s, issued, today, servers)
                if case_id is not None and new:
                    created.append(case_id)
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
        if then is not None and created:
            then(s, created)
    return made


def _referred_case(
    session: Session, issued: IssuedCard, today: dt.date, servers: Sequence[str]
) -> tuple[str | None, bool]:
    """The patient's open case, or the referred case the card makes; and whether it was made now.
    None where the patient's id is now ours for another patient (a push since the card was issued)."""
    if clashing_patient_ids(session, servers, [issued.patient_id]):
        return None, False
    ours = ehr_patient_keys(session, servers, [issued.patient_id])
    existing = [c for pid in ours for c in list_cases(session, patient=pid, status=_OPEN)]
    if existing:
        return existing[0].id, False
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
    if get_case(session, case.id) is not None:
        return case.id, False
    save_case(session, case)
    return case.id, True
