"""Post-discharge placement, the Clinical Order Workflows way: one order, one Task per candidate facility.

A person leaving hospital for a skilled nursing facility (or rehabilitation, home health, …) is offered
to several facilities at once. On the server (HL7 fhir-cow-ig, SNF placement):

* one **ServiceRequest** — the placement asked for (``intent`` order, the patient, the setting in words);
* one **Task per candidate** — ``code`` request-fulfillment, ``focus`` the ServiceRequest, ``owner`` the
  facility, ``status`` requested;
* each facility answers on its Task: ``rejected`` (with a ``statusReason``), ``received`` with a
  Communication ``partOf`` the Task asking for information, or ``accepted``;
* once the patient chooses, the chosen Task gets ``businessStatus`` "selected" (still ``accepted``)
  and every other open one is ``cancelled`` with ``statusReason`` "not selected".

Here, the facility chosen also joins the case's care team (in the role its setting calls for) and
becomes the provider of the case's next stay (a *planned* stay in that setting), so the tracker and
the push carry on from there. Only an accepting facility may be chosen, and only while the case is
open: a closed case is offered to no facility and placed with none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ..config import Settings
from ..domain import CareSetting, Case, Party, PartyKind, Stay, StayStatus, TeamMember
from ..errors import FhirCmError
from ..fhir import AsyncFhirClient, ResourceNotFound
from ..store import Candidate, CaseRecord, Placement, Store, get_case_record, get_placement, put_placement, save_case
from ._membership import patient_ids
from ._follow_ups import RECEIVING_ROLE

__all__ = ["PlacementError", "PlacementHook", "choose_placement", "offer_placement", "read_placement"]

TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
#: The status read back for a candidate whose Task the server no longer holds.
DELETED = "deleted"
#: Task statuses after which a candidate is out of the running.
_CLOSED = {"rejected", "cancelled", "completed", "failed", "entered-in-error", DELETED}
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


#: Run in the transaction that records an offer, or that puts the chosen facility on the case (an audit row).
PlacementHook = Callable[[Session, Placement], None]


class PlacementError(FhirCmError, ValueError):
    """A placement cannot be offered or settled as asked (no such offer, a candidate that did not accept)."""


def _id(*parts: str) -> str:
    return "placement-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _open_case(session: Session, case_id: str) -> CaseRecord:
    """The case as stored, if it is still open: a closed case is offered to no facility and placed with none."""
    record = get_case_record(session, case_id)
    if record is None:
        raise PlacementError(f"no case {case_id}")
    if not record.case.is_open:
        raise PlacementError(f"case {case_id} is {record.case.status.value}: reopen it to offer or settle a placement")
    return record


def _recorded(session: Session, placement_id: str, client: AsyncFhirClient) -> Placement:
    """The offer as recorded, if it was made on ``client``'s server: its Task ids mean nothing on another,
    where each would read as deleted (overwriting the answers recorded) or name some other Task."""
    offer = get_placement(session, placement_id)
    if offer is None:
        raise PlacementError(f"no placement {placement_id}")
    if offer.server_base != client.base_url:  # both as the client normalises a base
        raise PlacementError(
            f"placement {placement_id} was made on {offer.server_base}, not {client.base_url}:"
            " follow and settle it with that server configured"
        )
    return offer


async def _holds_organization(client: AsyncFhirClient, org: str) -> bool:
    try:
        found = await client.read("Organization", org)
    except ResourceNotFound:  # 404, or 410 for one deleted
        return False
    return found.get("resourceType") == "Organization"


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        if value.get("text"):
            return str(value["text"])
        for coding in value.get("coding") or []:
            if coding.get("display") or coding.get("code"):
                return str(coding.get("display") or coding.get("code"))
    return None


async def offer_placement(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    case_id: str,
    setting: CareSetting,
    candidates: Sequence[str],
    *,
    service: str | None = None,
    then: PlacementHook | None = None,
) -> Placement:
    """Offer the case's patient to ``candidates`` (Organization ids the server holds) for ``setting``:
    the ServiceRequest and one Task per candidate, written to the server; the offer recorded here
    (``then`` runs in that transaction). A candidate the server holds no Organization for is refused
    before anything is written."""
    if not candidates or len(set(candidates)) != len(candidates):
        raise PlacementError("name each candidate facility once (at least one)")
    if not all(_FHIR_ID.fullmatch(c) for c in candidates):
        raise PlacementError("a candidate facility is named by its Organization id (1-64 of A-Z a-z 0-9 - .)")
    with store.session(read_only=True) as session:
        case = _open_case(session, case_id).case
        patient = patient_ids(session, client.base_url, case.patient.id)[-1]
    missing = [org for org in candidates if not await _holds_organization(client, org)]
    if missing:  # a Task owned by no facility reaches nobody (and HAPI refuses it, half-way through the offer)
        raise PlacementError(
            f"the server holds no Organization {', '.join(missing)}: name candidates by their id there"
        )
    system = settings.identifier_system
    placement_id = _id(case_id, setting.value, *candidates, dt.datetime.now(dt.UTC).isoformat())
    words = service or f"Post-discharge placement: {setting.value.replace('-', ' ')}"
    request = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": system, "value": placement_id}],
        "status": "active",
        "intent": "order",
        "code": {"text": words},
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    written = await client.create(request, if_none_exist=f"identifier={system}|{placement_id}")
    held = []
    for org in candidates:
        task = {
            "resourceType": "Task",
            "identifier": [{"system": system, "value": f"{placement_id}-{org}"}],
            "status": "requested",
            "intent": "order",
            "code": {
                "coding": [{"system": TASK_CODES, "code": "fulfill", "display": "Fulfill the focal request"}],
                "text": "request-fulfillment",
            },
            "focus": {"reference": f"ServiceRequest/{written.id}"},
            "for": {"reference": f"Patient/{patient}"},
            "owner": {"reference": f"Organization/{org}"},
            "authoredOn": request["authoredOn"],
        }
        made = await client.create(task, if_none_exist=f"identifier={system}|{placement_id}-{org}")
        held.append(Candidate(organization=org, task_id=str(made.id)))
    offer = Placement(
        id=placement_id,
        case_id=case_id,
        server_base=client.base_url,
        setting=setting.value,
        service=words,
        service_request_id=str(written.id),
        candidates=held,
        created_at=dt.datetime.now(dt.UTC),
        updated_at=dt.datetime.now(dt.UTC),
    )
    with store.session() as session:
        recorded = put_placement(session, offer)
        if then is not None:
            then(session, recorded)
        return recorded


async def read_placement(store: Store, client: AsyncFhirClient, placement_id: str) -> Placement:
    """Each candidate's answer as its Task on the server says now (and the questions asked in
    Communications ``partOf`` it), stored and returned; a Task the server no longer holds reads as
    ``deleted`` (out of the running), the others are still followed."""
    with store.session(read_only=True) as session:
        offer = _recorded(session, placement_id, client)
    answers = []
    for c in offer.candidates:
        try:
            task = await client.read("Task", c.task_id)
        except ResourceNotFound:  # deleted on the server (410), or never kept there (404)
            gone = f"Task/{c.task_id} is no longer on the server"
            answers.append(Candidate(organization=c.organization, task_id=c.task_id, status=DELETED, reason=gone))
            continue
        questions = []
        if task.get("status") == "received" or task.get("status") == "on-hold":
            found = await client.search("Communication").where("part-of", f"Task/{c.task_id}").fetch_all()
            questions = [
                str(p.get("contentString")) for m in found for p in m.get("payload", []) if p.get("contentString")
            ]
        answers.append(
            Candidate(
                organization=c.organization,
                task_id=c.task_id,
                status=str(task.get("status")),
                business_status=_text(task.get("businessStatus")),
                reason=_text(task.get("statusReason")),
                questions=questions,
            )
        )
    with store.session() as session:
        return put_placement(session, offer.model_copy(update={"candidates": answers}))


async def choose_placement(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    placement_id: str,
    organization: str,
    *,
    as_of: dt.date | None = None,
    then: PlacementHook | None = None,
) -> Placement:
    """The patient chose ``organization``: its Task becomes "selected", the other open ones are cancelled
    ("not selected"), and the facility joins the care team as the next stay's provider from ``as_of``
    (today when not given: the API gives its own day), ``then`` running in the transaction that saves the
    case. Only a candidate whose Task is ``accepted`` on the server may be chosen (answers are read back
    first), and only while the case is open."""
    with store.session(read_only=True) as session:  # before any Task changes: a case closed since is not placed
        _open_case(session, _recorded(session, placement_id, client).case_id)
    offer = await read_placement(store, client, placement_id)
    chosen = next((c for c in offer.candidates if c.organization == organization), None)
    if chosen is None:
        raise PlacementError(f"{organization} is not a candidate of placement {placement_id}")
    if offer.chosen is not None and offer.chosen != organization:
        raise PlacementError(f"placement {placement_id} is settled already: {offer.chosen} was chosen")
    _require_accepted(organization, chosen.status)
    # Each Task read again before it is changed: an answer given since is not overwritten.
    task = await client.read("Task", chosen.task_id)
    _require_accepted(organization, str(task.get("status")))
    task["businessStatus"] = {"text": "selected"}
    await client.update(task)
    for other in offer.candidates:
        if other.organization == organization or other.status in _CLOSED:
            continue
        declined = await client.read("Task", other.task_id)
        if declined.get("status") in _CLOSED:  # declined (or closed) since: its own answer stands
            continue
        declined["status"] = "cancelled"
        declined["statusReason"] = {"text": "not selected"}
        await client.update(declined)
    _welcome(store, offer, organization, as_of or dt.date.today(), then)
    settled = await read_placement(store, client, placement_id)
    with store.session() as session:
        return put_placement(session, settled.model_copy(update={"chosen": organization}))


def _require_accepted(organization: str, status: str) -> None:
    if status != "accepted":
        raise PlacementError(
            f"{organization} has not accepted (its Task is {status}): only an accepting facility can be chosen"
        )


def _welcome(store: Store, offer: Placement, organization: str, today: dt.date, then: PlacementHook | None) -> None:
    """The chosen facility on the care team and as the provider of the case's next (planned) stay, from ``today``."""
    setting = CareSetting(offer.setting)
    facility = Party(kind=PartyKind.ORGANISATION, id=organization)
    with store.session() as session:
        record = _open_case(session, offer.case_id)
        case: Case = record.case
        data = case.model_dump()
        if not any(m.party.is_local(PartyKind.ORGANISATION, organization) for m in case.team):
            role = RECEIVING_ROLE.get(setting)
            if role is not None:
                data["team"].append(
                    TeamMember(id=f"member-{organization}"[:64], role=role, party=facility, start=today).model_dump()
                )
        planned = next((s for s in case.stays if s.status is StayStatus.PLANNED and s.setting is setting), None)
        if planned is None:
            data["stays"].append(
                Stay(
                    id=f"{offer.id}-stay"[:64],
                    setting=setting,
                    status=StayStatus.PLANNED,
                    start=today,
                    provider=facility,
                ).model_dump()
            )
        else:
            data["stays"] = [
                {**s, "provider": facility.model_dump()} if s["id"] == planned.id else s for s in data["stays"]
            ]
        save_case(session, Case.model_validate(data), expected_revision=record.revision)
        if then is not None:
            then(session, offer)
