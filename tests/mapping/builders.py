"""Small, readable cases for example-based mapping tests (the property tests use tests/strategies.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_cm.domain import (
    Case,
    Contact,
    Goal,
    Need,
    Party,
    Period,
    Referral,
    StatusChange,
    Stay,
    TeamMember,
)

SYSTEM = "urn:fhir-cm:test"
D = dt.date

PATIENT = Party(kind="patient", id="pat-1", name="Ann Example")
MANAGER = Party(kind="practitioner", id="cm-1", name="Casey Manager")
AGENCY = Party(kind="organisation", id="org-home-care")
HOSPITAL = Party(kind="organisation", id="org-hospital")


def full_case(**changes: Any) -> Case:
    """A case with one or two of everything, the way a case manager would have it mid-way."""
    values: dict[str, Any] = dict(  # noqa: C408 - keyword arguments read like the Case they build
        id="case-1",
        programme="health-care",
        status="active",
        status_history=[
            StatusChange(status="referred", start=D(2024, 1, 2), end=D(2024, 1, 5), reason="from ED"),
            StatusChange(status="active", start=D(2024, 1, 5)),
        ],
        period=Period(start=D(2024, 1, 2)),
        patient=PATIENT,
        case_manager=MANAGER,
        referral_source=HOSPITAL,
        eligibility=["readmission", "homelessness"],
        acuity="high",
        plan_summary="Keep Ann safely at home after her hospital stay.",
        needs=[
            Need(
                id="need-1", domain="social", finding="No stable housing", recorded=D(2024, 1, 6), strengths=["family"]
            ),
            Need(id="need-2", domain="functional", finding="Cannot climb stairs", recorded=D(2024, 1, 6)),
        ],
        goals=[
            Goal(
                id="goal-1",
                description="Stable housing",
                due=D(2024, 6, 1),
                target="lease signed",
                achievement="in-progress",
                addresses=["need-1"],
            ),
            Goal(id="goal-2", description="Walk 200 m", self_care=True, start=D(2024, 1, 10), addresses=["need-2"]),
        ],
        referrals=[
            Referral(
                id="ref-1",
                kind="home-health",
                service="Home physiotherapy 2x/week",
                authored=D(2024, 1, 7),
                due=D(2024, 1, 14),
                target=AGENCY,
                addresses=["need-2"],
                for_stay="stay-1",
            ),
            Referral(
                id="ref-2",
                kind="housing",
                service="Housing support",
                status="rejected",
                status_reason="no capacity",
                authored=D(2024, 1, 7),
                addresses=["need-1"],
            ),
        ],
        team=[
            TeamMember(id="tm-1", role="case-manager", party=MANAGER, start=D(2024, 1, 5)),
            TeamMember(id="tm-2", role="patient", party=PATIENT, start=D(2024, 1, 5)),
        ],
        contacts=[Contact(id="contact-1", date=D(2024, 1, 8), mode="face-to-face", note="Home visit went well")],
        stays=[
            Stay(
                id="stay-1",
                setting="acute-hospital",
                start=D(2023, 12, 28),
                end=D(2024, 1, 4),
                discharge_disposition="home",
                provider=HOSPITAL,
            ),
        ],
    )
    values.update(changes)
    return Case(**values)


def changed_paths(a: Any, b: Any, path: tuple = ()) -> set[tuple]:
    """Where two JSON values differ, as paths to the smallest differing parts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[tuple] = set()
        for key in a.keys() | b.keys():
            if key not in a or key not in b:
                out.add((*path, key))
            else:
                out |= changed_paths(a[key], b[key], (*path, key))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = set()
        for i, (x, y) in enumerate(zip(a, b)):
            out |= changed_paths(x, y, (*path, i))
        return out
    return set() if a == b else {path}


def translated_note() -> dict[str, Any]:
    """A hospital's extension whose string value carries its own extension (its French translation):
    valid FHIR that fhir.resources' Extension model refuses (``_valueString``)."""
    translation = {
        "url": "http://hl7.org/fhir/StructureDefinition/translation",
        "extension": [{"url": "lang", "valueCode": "fr"}, {"url": "content", "valueString": "Logement"}],
    }
    return {
        "url": "https://hospital.example/note",
        "valueString": "Housing",
        "_valueString": {"extension": [translation]},
    }
