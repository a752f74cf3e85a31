"""What screening keeps of a patient's resources: a few dates and codes, never the resources.

A population read holds every patient's Encounters, Conditions and screening Observations; keeping
them whole would make memory grow with the hospital. Each resource is reduced at once to one small
``Fact`` (the store's ``FactRecord``: kind, dates, codes, a flag) — the same shape the store keeps per resource, so a resource
updated later replaces its own fact — and a patient's facts together are ``PatientFacts``
(``_patient``), which the rules assess. The reduction is the same for R4 and R5 (``class`` a Coding or a list of
CodeableConcepts, ``period`` or ``actualPeriod``). A Patient's fact keeps its birth as the span of
days ``birthDate`` allows (``start`` the first, ``end`` the last: ``1950-06`` is 1–30 June), so an
age is only claimed where every day of that span gives it (``PatientFacts.age``).

An Encounter or a screen dated only to a month or a year (``2026-05``) keeps that span too (``start``
its first day, an ``until|`` code its last): it counts where the *whole* span falls in the rules'
window, as an age is claimed — a visit of "May 2025" is not one "in the last 365 days" on 20 May
2026, since it may have been on the 3rd; read as its first day it would have been dropped a month
early, read as its last, counted a month late. A Condition's date (onset, else recorded) keeps its
first day: a condition is a standing state with no window, counted on every screening day not before
it (a diagnosis of "2026" counts in 2026, not only from 2027).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from ..mapping import local_reference, patient_of, read_date, read_day
from ..store import FactRecord as Fact
from ._patient import (
    ALONE,
    ANSWER,
    MEMBER,
    PART_OF,
    REPLACED_BY,
    UNTIL,
    VOIDED,
    ConditionFact,
    EncounterFact,
    PatientFacts,
    ScreenFact,
)
from ._rules import EligibilityRules, load_rules

__all__ = [
    "ALONE",
    "ANSWER",
    "MEMBER",
    "VOIDED",
    "ConditionFact",
    "EncounterFact",
    "Fact",
    "PatientFacts",
    "ScreenFact",
    "fact_of",
    "members_of",
    "facts_digest",
    "facts_from_resources",
]


def facts_from_resources(
    patient_id: str,
    resources: Iterable[Mapping[str, Any]],
    *,
    open_case: bool = False,
    bases: Collection[str] = (),
) -> PatientFacts:
    """One patient's facts from their resources (R4 or R5 JSON), e.g. a CDS Hooks prefetch;
    ``bases``: the server's they came from (see :func:`fact_of`)."""
    rules = load_rules()
    facts = PatientFacts(patient_id=patient_id, open_case=open_case)
    for resource in resources:
        fact = fact_of(resource, rules, bases)
        if fact is not None and fact.patient_id == patient_id:
            facts.add(fact)
    return facts


def facts_digest(rules: EligibilityRules) -> str:
    """A digest of the part of the rules ``fact_of`` reads — the encounter classes, the statuses
    ignored, the screening panels, their questions and the answers that say a need, and the categories
    of an answer recorded with no panel — in an order that does not depend on the
    process (sets sorted). A screening keeps facts and reads only what changed: under rules that keep
    other facts (a class added, a status no longer ignored, a panel added) the facts kept are wrong for
    every resource unchanged since, so the watermark names this digest and such a change reads
    everything again. The value sets, windows, thresholds, weights and sentences are not in it: a fact
    keeps every code and date, and the rules apply those at each ranking."""
    kept = {
        "encounter_classes": {kind: sorted(codes) for kind, codes in sorted(rules.encounter_classes.items())},
        "ignored": [
            sorted(rules.ignored_encounter_statuses),
            sorted(rules.ignored_condition_statuses),
            sorted(rules.ignored_verification_statuses),
            sorted(rules.ignored_screen_statuses),
        ],
        "panels": sorted(rules.screens.panels),
        "positive": [sorted(rules.screens.positive_interpretations), sorted(rules.screens.positive_answers)],
        "questions": {
            panel: {question: sorted(answers) for question, answers in sorted(listed.items())}
            for panel, listed in sorted(rules.screens.questions.items())
        },
        "alone": sorted(rules.screens.answer_categories),
    }
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:8]


def fact_of(resource: Mapping[str, Any], rules: EligibilityRules, bases: Collection[str] = ()) -> Fact | None:
    """The fact of one resource, or None when it tells screening nothing (another type, a cancelled
    visit, a refuted diagnosis, an Observation that is no screen, no patient).

    ``bases``: those of the server the resource came from. A reference is the server's own when
    relative or absolute at one of them; a resource about another server's patient
    (``https://other.example/fhir/Patient/1``) is about no patient here, and its member or parent at
    another server no resource here (read as the local ``Patient/1``'s, another person's conditions
    and stays counted toward the local patient's eligibility)."""
    rtype = resource.get("resourceType")
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        return None
    if rtype == "Patient":
        merged = _replaced_by(resource)
        first, last = _birth(resource.get("birthDate"))
        return Fact(resource_type="Patient", resource_id=rid, patient_id=rid, kind="patient", start=first, end=last,
                    flag=_deceased(resource), codes=[f"{REPLACED_BY}|{merged}"] if merged else [])  # fmt: skip
    patient = patient_of(resource, bases=bases)
    if patient is None:
        return None
    if rtype == "Encounter":
        return _encounter(resource, rid, patient, rules, bases)
    if rtype == "Condition":
        return _condition(resource, rid, patient, rules)
    if rtype == "Observation":
        return _screen(resource, rid, patient, rules, bases)
    return None


def _items(value: Any) -> list[Any]:
    """A repeating element's values; a resource that breaks FHIR's shapes (a CDS Hooks prefetch is
    what the EHR sends, a file what the export wrote) has none there, rather than an error of ours."""
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _day(value: Any) -> dt.date | None:
    """The day of a FHIR date or dateTime, an instant (a time with its offset) on fhir-cm's clock —
    the clock "today" is read from, so the window ends where it should: 08:30 in Sydney on 1 June is
    31 May on a clock in UTC, not an admission of tomorrow. A date without a time stays as written."""
    day = read_date(value)
    if day is None or len(value) <= 10:
        return day
    try:
        instant = dt.datetime.fromisoformat(value)
        return instant.astimezone().date() if instant.tzinfo is not None else day
    except (ValueError, OverflowError):  # not ISO 8601 as Python reads it; year 1 east of UTC
        return day


def _span(value: Any) -> tuple[dt.date, dt.date] | None:
    """The first and last day a FHIR date or dateTime allows: the same day for a full date (``_day``),
    every day of the month or year for one written to a month or a year; None for junk."""
    day = _day(value)
    if day is not None:
        return day, day
    first, last = read_day(value), read_day(value, last=True)
    return (first, last) if first is not None and last is not None else None


def _spanned(span: tuple[dt.date, dt.date]) -> list[str]:
    """The ``until|`` code of a span of more than a day, else none."""
    return [f"{UNTIL}|{span[1].isoformat()}"] if span[1] != span[0] else []


def _deceased(patient: Mapping[str, Any]) -> bool:
    """Whether the Patient is known to have died: ``deceasedBoolean`` true, or a ``deceasedDateTime``. A
    boolean sent as a string (a sender's mistake) is read by its word — ``"false"`` is no death, where
    Python's truth of a non-empty string would have excluded a living patient from every screening."""
    flag = patient.get("deceasedBoolean")
    if isinstance(flag, str):
        flag = flag.strip().lower() == "true"
    return flag is True or isinstance(patient.get("deceasedDateTime"), str)


def _birth(value: Any) -> tuple[dt.date | None, dt.date | None]:
    """The first and last day a ``birthDate`` allows: a year or a month stands for all its days. One
    that is no date (junk, a day that does not exist) is no birth date, rather than a guess."""
    first, last = read_day(value), read_day(value, last=True)
    if first is None or last is None:
        return None, None
    return first, last


def _replaced_by(patient: Mapping[str, Any]) -> str | None:
    """The record a merged Patient was replaced by (``link`` of type ``replaced-by``): this one is no
    longer the patient's, and their resources are (or will be) the other's."""
    for link in _items(patient.get("link")):
        if isinstance(link, Mapping) and link.get("type") == REPLACED_BY:
            other = link.get("other")
            reference = other.get("reference") if isinstance(other, Mapping) else None
            return reference if isinstance(reference, str) and reference else "another record"
    return None


def _codings(concept: Any) -> list[str]:
    if not isinstance(concept, Mapping):
        return []
    return [
        f"{c.get('system', '')}|{c['code']}"
        for c in _items(concept.get("coding"))
        if isinstance(c, Mapping) and isinstance(c.get("code"), str)
    ]


def _status_code(concept: Any) -> str | None:
    for coding in _codings(concept):
        return coding.partition("|")[2]
    return None


def _encounter(
    resource: Mapping[str, Any], rid: str, patient: str, rules: EligibilityRules, bases: Collection[str]
) -> Fact | None:
    if _text(resource.get("status")) in rules.ignored_encounter_statuses:
        return None
    raw_class = resource.get("class")
    classes: list[str] = []
    if isinstance(raw_class, Mapping) and isinstance(raw_class.get("code"), str):  # R4: a Coding
        classes.append(raw_class["code"])
    elif isinstance(raw_class, list):  # R5: CodeableConcepts
        classes += [c.partition("|")[2] for concept in raw_class for c in _codings(concept)]
    kind = next((k for k in (rules.encounter_kind(c) for c in classes) if k is not None), None)
    period = resource.get("actualPeriod") or resource.get("period") or {}
    start = _span(period.get("start")) if isinstance(period, Mapping) else None
    if kind is None or start is None:
        return None
    end = _day(period.get("end")) if isinstance(period, Mapping) else None
    parent = resource.get("partOf")
    literal = _text(parent.get("reference")) if isinstance(parent, Mapping) else None
    parsed = local_reference(literal, bases) if literal is not None else None
    codes = [f"{PART_OF}|{parsed[1]}"] if parsed is not None and parsed[0] == "Encounter" else []
    return Fact(resource_type="Encounter", resource_id=rid, patient_id=patient, kind=kind, start=start[0], end=end,
                codes=codes + _spanned(start))  # fmt: skip


def _condition(resource: Mapping[str, Any], rid: str, patient: str, rules: EligibilityRules) -> Fact | None:
    clinical = _status_code(resource.get("clinicalStatus"))
    if clinical in rules.ignored_condition_statuses:
        return None
    if clinical is None and any(k.startswith("abatement") for k in resource):
        return None  # abated, its status left out: a condition abated is over (FHIR's con-4)
    if _status_code(resource.get("verificationStatus")) in rules.ignored_verification_statuses:
        return None
    codes = _codings(resource.get("code"))
    if not codes:
        return None
    period = resource.get("onsetPeriod")
    onset = next(
        (span[0] for value in (resource.get("onsetDateTime"), period.get("start") if isinstance(period, Mapping) else None,
                               resource.get("recordedDate")) if (span := _span(value)) is not None),
        None,
    )  # fmt: skip
    return Fact(
        resource_type="Condition", resource_id=rid, patient_id=patient, kind="condition", start=onset, codes=codes
    )


def _screen(
    resource: Mapping[str, Any], rid: str, patient: str, rules: EligibilityRules, bases: Collection[str]
) -> Fact | None:
    """A screening panel's fact, its members named; else, for an Observation answering with a need (a
    screen's member, the answer to one of its items) or grouping others (a section of the panel), an
    ``answer`` fact — one recorded with no panel, in a screen's category, keeps the panel it answers
    and its date (``alone|``); else none. A cancelled or entered-in-error panel keeps only its members
    (``voided``): its answers are no screen of their own."""
    screens = rules.screens
    panel = next((c for c in _codings(resource.get("code")) if c in screens.panels), None)
    members = [f"{MEMBER}|{m}" for m in members_of(resource, bases)]
    if _text(resource.get("status")) in rules.ignored_screen_statuses:
        return Fact(resource_type="Observation", resource_id=rid, patient_id=patient, kind=VOIDED,
                    codes=members) if panel is not None and members else None  # fmt: skip
    asked = _questions(resource)
    needs = [screens.says_need(question, answers) for question, answers in asked]
    on = _effective(resource)
    if panel is None:  # an answer, or a section grouping answers (hasMember), or nothing to screening
        alone = _alone(resource, asked, needs, rules) if on is not None else None
        if alone is not None and on is not None:
            return Fact(resource_type="Observation", resource_id=rid, patient_id=patient, kind=ANSWER, flag=True,
                        start=on[0], codes=[*members, f"{ALONE}|{alone}", *_spanned(on)])  # fmt: skip
        return Fact(resource_type="Observation", resource_id=rid, patient_id=patient, kind=ANSWER, flag=any(needs),
                    codes=members) if any(needs) or members else None  # fmt: skip
    if on is None:
        return None
    interpretations = {c.partition("|")[2] for i in _items(resource.get("interpretation")) for c in _codings(i)}
    positive = bool(interpretations & screens.positive_interpretations) or any(needs)
    return Fact(resource_type="Observation", resource_id=rid, patient_id=patient, kind="screen", start=on[0],
                codes=[panel, *_spanned(on), *members], flag=positive)  # fmt: skip


def _questions(resource: Mapping[str, Any]) -> list[tuple[list[str], list[str]]]:
    """Each question the Observation answers and its coded answers: its own code and value, and each
    component's."""
    asked = [(_codings(resource.get("code")), _codings(resource.get("valueCodeableConcept")))]
    for component in _items(resource.get("component")):
        if isinstance(component, Mapping):
            asked.append((_codings(component.get("code")), _codings(component.get("valueCodeableConcept"))))
    return asked


def _effective(resource: Mapping[str, Any]) -> tuple[dt.date, dt.date] | None:
    """The days an Observation was made on: ``effective[x]`` (a period's start), else ``issued``."""
    period = resource.get("effectivePeriod")
    on = _span(resource.get("effectiveDateTime")) or _span(resource.get("effectiveInstant"))
    on = on or (_span(period.get("start")) if isinstance(period, Mapping) else None)
    return on or _span(resource.get("issued"))


def _alone(
    resource: Mapping[str, Any], asked: list[tuple[list[str], list[str]]], needs: list[bool], rules: EligibilityRules
) -> str | None:
    """The panel an answer recorded with no panel stands for a screen of: in a screen's category, the
    first panel one of its questions it answers with a need belongs to."""
    categories = {c for concept in _items(resource.get("category")) for c in _codings(concept)}
    if not categories & rules.screens.answer_categories:
        return None
    found = (rules.screens.panel_answered(q, a) for (q, a), need in zip(asked, needs, strict=True) if need)
    return next((p for p in found if p is not None), None)


def members_of(resource: Mapping[str, Any], bases: Collection[str] = ()) -> list[str]:
    """The ids of the Observations a panel lists in ``hasMember`` (relative references, or absolute at
    one of ``bases``, the server's; a QuestionnaireResponse or MolecularSequence member, one on another
    server, or one that is no reference, is none)."""
    ids: list[str] = []
    for member in _items(resource.get("hasMember")):
        literal = _text(member.get("reference")) if isinstance(member, Mapping) else None
        ref = local_reference(literal, bases) if literal is not None else None
        if ref is not None and ref[0] == "Observation" and ref[1] not in ids:
            ids.append(ref[1])
    return ids
