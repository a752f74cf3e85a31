"""Synthetic screening data: FHIR R4 resources for patients built to meet (or miss) each rule.

Used by the unit tests, the store and CLI tests, the HAPI test and the benchmark. Each profile
says, independently of the evaluator, which eligibility reasons the patient should be given.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"

_ids = itertools.count(1)


def _rid(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def patient(pid: str, *, deceased: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Patient", "id": pid, "active": True}
    if deceased:
        out["deceasedBoolean"] = True
    return out


def encounter(
    pid: str, cls: str, start: dt.date, days: int = 0, *, status: str = "finished", rid: str | None = None
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": rid or _rid("enc"),
        "status": status,
        "class": {"system": ACT, "code": cls},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start.isoformat(), "end": (start + dt.timedelta(days=days)).isoformat()},
    }


def condition(
    pid: str, code: str, system: str = ICD10, *, clinical: str = "active", verification: str = "confirmed",
    rid: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "resourceType": "Condition",
        "id": rid or _rid("cond"),
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical}]},
        "verificationStatus": {"coding": [{"system": VERIFICATION, "code": verification}]},
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


def screen(pid: str, on: dt.date, *, positive: bool, panel: str = "96777-8", rid: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid or _rid("obs"),
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}
        ],
        "code": {"coding": [{"system": LOINC, "code": panel}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": on.isoformat(),
        "interpretation": [{"coding": [{"system": INTERP, "code": "POS" if positive else "NEG"}]}],
    }


#: The profiles of a seeded population, and the reasons each should get (empty: not a candidate).
PROFILES: dict[str, frozenset[str]] = {
    "admissions": frozenset({"frequent-admissions"}),
    "readmitted": frozenset({"frequent-admissions", "readmission"}),
    "ed": frozenset({"frequent-ed-visits"}),
    "chronic": frozenset({"multiple-comorbidities"}),
    "high-risk": frozenset({"complex-condition"}),
    "screen": frozenset({"social-needs"}),
    "substance": frozenset({"substance-use"}),
    "one-admission": frozenset(),
    "old-admissions": frozenset(),
    "two-chronic": frozenset(),
    "resolved": frozenset(),
    "negative-screen": frozenset(),
    "nothing": frozenset(),
}


def profile_resources(pid: str, profile: str, today: dt.date, n: int = 0) -> list[dict[str, Any]]:
    """The resources of one patient of ``profile`` (``n`` varies dates a little between patients)."""
    d = lambda days: today - dt.timedelta(days=days + n % 7)  # noqa: E731
    out = [patient(pid)]
    if profile == "admissions":
        out += [encounter(pid, "IMP", d(200), 4), encounter(pid, "IMP", d(90), 3)]
    elif profile == "readmitted":
        out += [encounter(pid, "IMP", d(100), 5), encounter(pid, "IMP", d(80), 3)]
    elif profile == "ed":
        out += [encounter(pid, "EMER", d(300)), encounter(pid, "EMER", d(150)), encounter(pid, "EMER", d(20))]
    elif profile == "chronic":
        out += [condition(pid, "E11.9"), condition(pid, "I10"), condition(pid, "J44.1")]
    elif profile == "high-risk":
        out += [condition(pid, "C34.90")]
    elif profile == "screen":
        out += [screen(pid, d(30), positive=True)]
    elif profile == "substance":
        out += [condition(pid, "F10.20")]
    elif profile == "one-admission":
        out += [encounter(pid, "IMP", d(60), 3), encounter(pid, "AMB", d(30))]
    elif profile == "old-admissions":
        out += [encounter(pid, "IMP", d(500), 3), encounter(pid, "IMP", d(420), 3)]
    elif profile == "two-chronic":
        out += [condition(pid, "E11.9"), condition(pid, "I10"), condition(pid, "J44.1", clinical="resolved")]
    elif profile == "resolved":
        out += [condition(pid, "C34.90", clinical="resolved"), condition(pid, "I50.9", verification="refuted")]
    elif profile == "negative-screen":
        out += [screen(pid, d(30), positive=False), encounter(pid, "EMER", d(10)), encounter(pid, "EMER", d(5))]
    for i, resource in enumerate(out[1:], start=1):
        resource["id"] = f"{pid}-r{i}"  # unique on a server shared by the session
    return out


def transaction(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle that PUTs the resources at their ids."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
        ],
    }


def population(prefix: str, per_profile: int, today: dt.date) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """(patient id, profile, resources) for ``per_profile`` patients of every profile."""
    for profile in PROFILES:
        for n in range(per_profile):
            pid = f"{prefix}-{profile}-{n}"
            yield pid, profile, profile_resources(pid, profile, today, n)
