"""The hand-off document: a PACIO Transitions of Care transfer summary for a move out of a stay.

When a person leaves a hospital, a skilled nursing facility or a rehabilitation stay, the receiving
provider needs what the case manager knows: the plan of care, the problems, why they are referred,
the goals and who is on the care team. PACIO's transfer summary (HL7 fhir-transitions-of-care-ig
STU1) is that document: a ``document`` Bundle whose first entry is a Composition of category (and
type) LOINC 18761-7 with 15 sections, each with a title, a narrative and entries — or, where the
case holds nothing for it (allergies, medications, …: the EHR's, not the case manager's), an
``emptyReason``. The sections, their codes and what fills them are data (``mappings/toc-sections.json``).

The case's resources are mapped as for a push (``case_to_bundle``): references between them are the
``urn:uuid:`` full URLs of their business identifiers, so they resolve inside the document; the
people and organisations they name are added as minimal resources under ``urn:uuid:`` URLs too
(another server's, an outside party, under its URL there: the document makes up no record of ours
for it). The
document and its identifier are derived from the case and the stay left, so building it again
gives the same document (bar its timestamp). A date the hospital wrote as a month or a year is said
so — in the words (the move "on 2026-03", the follow-up "due 2026-04") and in the resources, which
keep the partial dates of the case's stored copies (``keep_dates_as_written``; FHIR allows them) —
rather than as the day fhir-cm holds it as (``stored_transfer_summary`` reads those copies).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import uuid
from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel
from sqlalchemy.orm import Session

from ..config import Settings
from ..domain import (
    CareSetting,
    Case,
    Party,
    PartyKind,
    ReferralKind,
    Transition,
    referral_days_as_written,
    say_day,
    with_dates_as_written,
)
from ..errors import FhirCmError
from ..fhir import AsyncFhirClient
from ..mapping import (
    FhirVersion,
    ResourceKey,
    case_to_bundle,
    dates_as_written,
    iter_references,
    keep_dates_as_written,
    parse_reference,
    party_reference,
    reference_base,
    xhtml_text,
)
from ..store import Store, copies_by_key, get_case, get_resources
from ..terminology import mappings_dir
from ._identity import rewrite_references
from ._intake import server_fhir_version
from ._membership import patient_ids
from ._parties import minimal_party

__all__ = [
    "HANDOFF_SETTINGS",
    "NoSuchMove",
    "WrittenSummary",
    "handoff_moves",
    "stored_transfer_summary",
    "transfer_summary",
    "write_transfer_summary",
]

#: The settings whose leaving calls for a transfer summary.
HANDOFF_SETTINGS = frozenset(
    {CareSetting.ACUTE_HOSPITAL, CareSetting.SKILLED_NURSING, CareSetting.INPATIENT_REHABILITATION}
)
_PARTY_TYPES = {"Patient", "Practitioner", "Organization", "RelatedPerson"}
_IN_PLAN = ("CarePlan", "Goal", "CareTeam")


class NoSuchMove(FhirCmError, LookupError):
    """The case has no move out of a hospital, SNF or rehabilitation stay with that number."""


@functools.cache
def _sections() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((mappings_dir() / "toc-sections.json").read_text(encoding="utf-8"))
    return data


def handoff_moves(case: Case) -> list[Transition]:
    """The case's moves out of a hospital, SNF or rehabilitation stay, oldest first (numbered from 1)."""
    return [t for t in case.transitions if t.from_setting in HANDOFF_SETTINGS]


def _narrative(*lines: str) -> dict[str, str]:
    body = "".join(f"<p>{xhtml_text(line)}</p>" for line in lines if line) or "<p>None recorded.</p>"
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'}


def _label(value: Any) -> str:
    return str(value).replace("-", " ") if value is not None else ""


def _urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


#: A case's stored resources by key, with their FHIR version (``store.copies_by_key``).
Stored = Mapping[ResourceKey, tuple[FhirVersion, Mapping[str, Any]]]


def stored_transfer_summary(
    session: Session, case: Case, number: int, version: str, identifier_system: str
) -> dict[str, Any]:
    """:func:`transfer_summary` of a stored case, saying its dates as its stored resources write them."""
    stored = copies_by_key(get_resources(session, case.id))
    return transfer_summary(case, number, version, identifier_system, stored=stored)


def transfer_summary(
    case: Case,
    number: int,
    version: str,
    identifier_system: str,
    *,
    now: dt.datetime | None = None,
    stored: Stored | None = None,
) -> dict[str, Any]:
    """The transfer summary of the case's ``number``-th move out of a hospital, SNF or rehabilitation
    stay (see :func:`handoff_moves`); raises :class:`NoSuchMove` when there is none. ``stored``: the
    case's stored resources, whose dates written as a month or a year the document says as written."""
    written = dates_as_written(case, stored, identifier_system) if stored else {}
    moves = with_dates_as_written(case, handoff_moves(case), written)
    if not 1 <= number <= len(moves):
        raise NoSuchMove(
            f"case {case.id} has {len(moves)} move(s) out of a hospital, SNF or rehabilitation stay; "
            f"there is no move {number}"
        )
    move = moves[number - 1]
    data = _sections()
    now = now or dt.datetime.now(dt.UTC)
    mapped = list(case_to_bundle(case, version, identifier_system)["entry"])
    if stored:
        keep_dates_as_written(
            case, _by_key(mapped, identifier_system), stored, cast(FhirVersion, version), identifier_system
        )
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in mapped:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry)
    wanted_referrals = {r.id for r in case.referrals if r.for_stay is not None and r.for_stay == move.from_stay}
    referral_entries = [
        e
        for e in by_type.get("ServiceRequest", [])
        if any(i.get("value") in wanted_referrals for i in e["resource"].get("identifier", []))
    ]
    filled = {
        "plan": [e for t in _IN_PLAN for e in by_type.get(t, [])],
        "needs": by_type.get("Condition", []),
        "referral": referral_entries,
        "instructions": [],
    }
    included = _closure([e for group in filled.values() for e in group], mapped)
    parties = _parties(case, included, identifier_system)

    follow_up = next(
        (r for r in case.referrals if r.kind is ReferralKind.FOLLOW_UP and r.for_stay == move.from_stay), None
    )
    on = say_day(move.date, move.date_as_written)
    due = (
        say_day(follow_up.due, referral_days_as_written(case, written, "due").get(follow_up.id))
        if follow_up and follow_up.due
        else None
    )
    texts = {
        "plan": [
            case.plan_summary or "",
            *(f"Goal: {g.description} ({_label(g.achievement or g.status)})" for g in case.goals),
            *(
                f"Care team: {_label(m.role)} {m.party.name or m.party.id}"
                for m in case.team
                if m.end is None or m.end >= move.date
            ),
        ],
        "needs": [
            f"{_label(n.domain)}: {n.finding}" for n in case.needs if n.resolved is None or n.resolved >= move.date
        ],
        "referral": [
            f"Leaving {_label(move.from_setting)} for {_label(move.to_setting)} on {on}"
            + (f" (discharge disposition: {_label(move.discharge_disposition)})" if move.discharge_disposition else ""),
            *(f"Eligible for case management: {_label(e)}" for e in case.eligibility),
            f"Follow-up due {due}" if due else "",
        ],
        "instructions": [f"Post-discharge follow-up within 7 days, due {due}: {follow_up.service}"]
        if follow_up and due
        else [],
    }
    sections = []
    for spec in data["sections"]:
        source = spec["from"]
        held = filled.get(source, []) if source else []
        lines = texts.get(source, []) if source else []
        section: dict[str, Any] = {
            "title": spec["title"],
            "code": {"coding": [{"system": spec["system"], "code": spec["code"], "display": spec["display"]}]},
        }
        # Entries, or an emptyReason (with what the case says in words, if anything).
        section["text"] = (
            _narrative(*lines)
            if any(lines)
            else _narrative("The case-management record holds nothing for this section.")
        )
        if held:
            section["entry"] = [{"reference": e["fullUrl"]} for e in held]
        else:
            section["emptyReason"] = {"coding": [data["emptyReason"]], "text": "Not held by case management"}
        sections.append(section)

    doc_key = f"{case.id}|transfer-summary|{move.from_stay or move.date.isoformat()}"
    patient_url = parties[("Patient", case.patient.id)]["fullUrl"]
    # An outside case manager (another server's practitioner) wrote none of it: the device did.
    manager = case.case_manager
    author = parties.get(("Practitioner", manager.id)) if manager is not None and not manager.outside else None
    stay = next((s for s in case.stays if s.id == move.from_stay), None)
    custodian_party = stay.provider if stay is not None and stay.provider is not None else None
    if custodian_party is not None and custodian_party.kind is PartyKind.ORGANISATION:
        if custodian_party.outside:
            custodian = _outside(custodian_party)
        else:
            custodian = parties.get(("Organization", custodian_party.id)) or _organisation(
                custodian_party.id, custodian_party.name, identifier_system
            )
    else:
        custodian = _organisation(f"{case.id}-case-management", "Case management service", identifier_system)
    extra = [custodian] if custodian["fullUrl"] not in {p["fullUrl"] for p in parties.values()} else []
    if author is None:
        author = _device(identifier_system, version)
        extra.append(author)
    document_code = data["document"]
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "identifier": {
            "system": identifier_system,
            "value": f"{case.id}-toc-{move.from_stay or move.date.isoformat()}",
        },
        "status": "final",
        "type": {"coding": [document_code]},
        "category": [{"coding": [document_code]}],
        "subject": {"reference": patient_url} if version == "R4" else [{"reference": patient_url}],
        "date": now.isoformat(timespec="seconds"),
        "author": [{"reference": author["fullUrl"]}],
        "title": f"Transfer summary: {_label(move.from_setting)} to {_label(move.to_setting)}, {on}",
        "custodian": {"reference": custodian["fullUrl"]},
        "language": "en-US",
        "section": sections,
    }
    if version != "R4":
        composition["identifier"] = [composition["identifier"]]  # 0..1 in R4, 0..* in R5
    entries: list[dict[str, Any]] = [
        {"fullUrl": _urn(doc_key + "|Composition"), "resource": composition},
        *({"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in included),
        *parties.values(),
        *extra,
    ]
    unique = list({e["fullUrl"]: e for e in reversed(entries)}.values())[::-1]  # first of each full URL
    return {
        "resourceType": "Bundle",
        "identifier": {
            "system": identifier_system,
            "value": f"{case.id}-toc-{move.from_stay or move.date.isoformat()}",
        },
        "type": "document",
        "timestamp": now.isoformat(timespec="seconds"),
        "entry": unique,
    }


def _by_key(entries: list[dict[str, Any]], system: str) -> dict[ResourceKey, dict[str, Any]]:
    """The mapped entries' resources by key: type and the business identifier in ``system``."""
    out: dict[ResourceKey, dict[str, Any]] = {}
    for entry in entries:
        resource = entry["resource"]
        for ident in resource.get("identifier", ()):
            if ident.get("system") == system and isinstance(ident.get("value"), str):
                out[ResourceKey(resource["resourceType"], ident["value"])] = resource
    return out


def _closure(chosen: list[dict[str, Any]], mapped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``chosen`` and every mapped entry they refer to, directly or not: a document's references resolve
    inside it."""
    by_url = {e["fullUrl"]: e for e in mapped}
    out = {e["fullUrl"]: e for e in chosen}
    todo = list(chosen)
    while todo:
        for literal in iter_references(todo.pop()["resource"]):
            found = by_url.get(literal)
            if found is not None and found["fullUrl"] not in out:
                out[found["fullUrl"]] = found
                todo.append(found)
    return list(out.values())


def _parties(case: Case, included: list[dict[str, Any]], system: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Minimal resources for the people and organisations the included resources name (and the
    patient and a local case manager), each under a ``urn:uuid:`` URL the references are rewritten
    to; an outside party (another server's record) under its own URL there, as the references name
    it: it is not made a record of ours. Keyed by type and id, an outside party's id being its URL."""
    # By type and id: servers number each type on its own, so Patient/1 and Practitioner/1 are two people.
    named = {
        party_reference(party)["reference"]: party
        for party in [case.patient, *(m.party for m in case.team)]
        + ([case.case_manager] if case.case_manager else [])
        + [s.provider for s in case.stays if s.provider is not None]
    }
    keys: set[tuple[str, str]] = {("Patient", case.patient.id)}
    if case.case_manager is not None and not case.case_manager.outside:
        keys.add(("Practitioner", case.case_manager.id))
    outside: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in included:
        for literal in iter_references(entry["resource"]):
            parsed = parse_reference(literal)
            if parsed is None or parsed[0] not in _PARTY_TYPES:
                continue
            if reference_base(literal) is None:
                keys.add((parsed[0], parsed[1]))
            elif (party := named.get(literal)) is not None:
                outside[(parsed[0], literal)] = _outside(party)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    patient_ref = f"Patient/{case.patient.id}"
    for rtype, rid in sorted(keys):
        party = named.get(f"{rtype}/{rid}")
        resource = (
            minimal_party(party, rtype, system, patient_ref)
            if party is not None
            else {"resourceType": rtype, "identifier": [{"system": system, "value": rid}]}
        )
        out[(rtype, rid)] = {"fullUrl": _urn(f"{rtype}?identifier={system}|{rid}"), "resource": resource}
    moved = {f"{rtype}/{rid}": e["fullUrl"] for (rtype, rid), e in out.items()}
    for entry in [*included, *out.values()]:
        entry["resource"] = rewrite_references(entry["resource"], moved)
    return out | outside


def _outside(party: Party) -> dict[str, Any]:
    """An outside party's entry: at its URL on its own server, its id there and the name the case knows."""
    literal = party_reference(party)["reference"]
    rtype, rid = literal.rsplit("/", 2)[-2:]
    resource: dict[str, Any] = {"resourceType": rtype, "id": rid}
    if party.name:
        resource["name"] = party.name if rtype == "Organization" else [{"text": party.name}]
    return {"fullUrl": literal, "resource": resource}


def _organisation(key: str, name: str | None, system: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Organization", "identifier": [{"system": system, "value": key}]}
    if name:
        resource["name"] = name
    return {"fullUrl": _urn(f"Organization?identifier={system}|{key}"), "resource": resource}


def _device(system: str, version: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Device", "identifier": [{"system": system, "value": "fhir-cm"}]}
    if version == "R4":
        resource["deviceName"] = [{"name": "fhir-cm", "type": "user-friendly-name"}]
    else:
        resource["name"] = [{"value": "fhir-cm", "type": "user-friendly-name"}]
    return {"fullUrl": _urn(f"Device?identifier={system}|fhir-cm"), "resource": resource}


def section_codes() -> Mapping[str, str]:
    """Section key → code, for tests and readers."""
    return {s["key"]: s["code"] for s in _sections()["sections"]}


class WrittenSummary(BaseModel):
    """Where a transfer summary was written: the document Bundle and the DocumentReference that finds it."""

    bundle_id: str
    document_reference_id: str
    created: bool


async def write_transfer_summary(
    store: Store, client: AsyncFhirClient, settings: Settings, case_id: str, number: int
) -> WrittenSummary:
    """Write the case's ``number``-th transfer summary to the server: the ``document`` Bundle, then a
    DocumentReference (type 18761-7, the patient as the server knows them) pointing at it, each created
    only if none with its identifier exists (writing again is harmless). A refusal raises the server's
    ``FhirError`` with its reason; nothing is changed in the store."""
    version = await server_fhir_version(client, settings)
    with store.session(read_only=True) as session:
        case = get_case(session, case_id)
        if case is None:
            raise LookupError(f"no case {case_id}")
        patient = patient_ids(session, client.base_url, case.patient.id)[-1]
        document = stored_transfer_summary(session, case, number, version, settings.identifier_system)
    ident = document["identifier"]
    criteria = f"identifier={ident['system']}|{ident['value']}"
    written = await client.create(document, if_none_exist=criteria)
    bundle_id = str(written.id)
    code = _sections()["document"]
    title = document["entry"][0]["resource"]["title"]
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "identifier": [ident],
        "status": "current",
        "type": {"coding": [code]},
        "category": [{"coding": [code]}],
        "subject": {"reference": f"Patient/{patient}"},
        "date": document["timestamp"],
        "description": title,
        "content": [
            {"attachment": {"contentType": "application/fhir+json", "url": f"Bundle/{bundle_id}", "title": title}}
        ],
    }
    if version == "R4":
        reference["content"][0]["format"] = {
            "system": "http://ihe.net/fhir/ValueSet/IHE.FormatCode.codesystem",
            "code": "urn:hl7-org:pacio:toc",
        }
    ref = await client.create(reference, if_none_exist=criteria)
    return WrittenSummary(bundle_id=bundle_id, document_reference_id=str(ref.id), created=written.created)
