"""A screening answer is judged by its question, and one recorded with no panel counts as its screen.

The rules list, for each screening panel, its questions and the answers to each that say the patient
has a need (``screens.questions``). Answers used to be judged against one list whatever the question:
"I have a steady place to live" (AHC's housing question, LA31993-1) and "I choose not to answer"
made a screen positive, "Yes, Hispanic or Latino" (PRAPARE) too, while "I do not have a steady place
to live", "Sometimes true" to the food questions and "No, I do not feel safe" did not.

US Core's SDOH screening assessments and the Gravity SDOH Clinical Care IG let a screen be recorded as
its answers alone, with no panel Observation: such an answer (category ``survey`` or ``sdoh``, coded
with a question the rules list) counts as a screen of the panel whose question it answers with a
need; one listed by a panel counts with that panel only, one of a cancelled or entered-in-error
panel not at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from fhir_cm.identify import assess, facts_from_resources, load_rules

TODAY = dt.date(2026, 6, 1)
P = "p-1"
LOINC = "http://loinc.org"
SURVEY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}
SDOH = {"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "code": "sdoh"}]}
SOCIAL = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "social-history"}]
}


def observation(
    rid: str,
    code: str,
    answer: str | None = None,
    *,
    members: tuple[str, ...] = (),
    status: str = "final",
    category: dict[str, Any] = SURVEY,
    days_ago: int | None = 10,
    system: str = LOINC,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "category": [category],
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{P}"},
    }
    if days_ago is not None:
        out["effectiveDateTime"] = (TODAY - dt.timedelta(days=days_ago)).isoformat()
    if answer is not None:
        out["valueCodeableConcept"] = {"coding": [{"system": LOINC, "code": answer}]}
    if members:
        out["hasMember"] = [{"reference": f"Observation/{m}"} for m in members]
    return out


def screened(resources: list[dict[str, Any]]) -> list[str] | None:
    """The panels of the positive screens the social-needs rule met (None: it was not met)."""
    assessment = assess(facts_from_resources(P, resources), load_rules(), TODAY)
    return next((r.evidence for r in assessment.reasons if r.rule == "social-needs-screen"), None)


@pytest.mark.parametrize(
    ("panel", "question", "answer", "need"),
    [
        ("96777-8", "71802-3", "LA31995-6", True),  # I do not have a steady place to live
        ("96777-8", "71802-3", "LA31994-9", True),  # ... but I am worried about losing it
        ("96777-8", "71802-3", "LA31993-1", False),  # I have a steady place to live
        ("96777-8", "71802-3", "LA30122-8", False),  # I choose not to answer this question
        ("96777-8", "88122-7", "LA6729-3", True),  # food would run out: sometimes true
        ("96777-8", "88122-7", "LA28398-8", False),  # never true
        ("96777-8", "96779-4", "LA32002-0", True),  # utilities: already shut off
        ("96777-8", "93030-5", "LA33-6", True),  # transportation: yes
        ("93025-5", "93030-5", "LA30133-5", True),  # PRAPARE's: kept me from medical appointments
        ("93025-5", "93030-5", "LA32-8", False),
        ("93025-5", "93026-3", "LA32-8", True),  # do you feel safe where you live? No
        ("93025-5", "93026-3", "LA33-6", False),
        ("93025-5", "56051-6", "LA33-6", False),  # Hispanic or Latino? Yes: no need
    ],
)
def test_an_answer_in_a_panel_is_judged_by_its_question(panel: str, question: str, answer: str, need: bool) -> None:
    resources = [observation("item", question, answer), observation("panel", panel, members=("item",))]
    assert screened(resources) == (["AHC HRSN" if panel == "96777-8" else "PRAPARE"] if need else None)


def test_an_answer_to_a_question_no_panel_lists_is_judged_by_the_answers_of_any_question() -> None:
    local = {"system": "http://hospital.example/questions"}
    assert screened(
        [observation("i", "transport", "LA33-6", **local), observation("p", "96777-8", members=("i",))]
    ) == ["AHC HRSN"]
    assert (
        screened([observation("i", "transport", "LA32-8", **local), observation("p", "96777-8", members=("i",))])
        is None
    )


@pytest.mark.parametrize(
    ("alone", "panels"),
    [
        (observation("a", "93030-5", "LA33-6"), ["AHC HRSN"]),
        (observation("a", "93030-5", "LA30134-3"), ["PRAPARE"]),  # PRAPARE's answer to the question both ask
        (observation("a", "71802-3", "LA31995-6", category=SDOH), ["AHC HRSN"]),  # US Core's sdoh category
        (observation("a", "71802-3", "LA30190-5"), ["PRAPARE"]),
        (observation("a", "71802-3", "LA31993-1"), None),  # a steady place to live: no need
        (observation("a", "93030-5", "LA33-6", category=SOCIAL), None),  # no screen's category
        (observation("a", "transport", "LA33-6", system="http://hospital.example/q"), None),  # no question listed
        (observation("a", "93030-5", "LA33-6", days_ago=400), None),  # out of the window
        (observation("a", "93030-5", "LA33-6", days_ago=None), None),  # undated
        (observation("a", "93030-5", "LA33-6", status="entered-in-error"), None),
    ],
)
def test_an_answer_recorded_with_no_panel_counts_as_a_screen_of_the_panel_it_answers(
    alone: dict[str, Any], panels: list[str] | None
) -> None:
    assert screened([alone]) == panels


def test_an_answer_a_panel_lists_counts_with_that_panel_only() -> None:
    """Listed by a panel (directly, or through a section of it), an answer is that screen's: a panel of
    last year does not count this year however recent its answers, and one cancelled or entered in
    error takes its answers with it."""
    yes = observation("yes", "93030-5", "LA33-6")
    assert screened([yes, observation("panel", "96777-8", members=("yes",), days_ago=400)]) is None
    section = observation("money", "93041-2", members=("yes",))
    assert screened([yes, section, observation("panel", "93025-5", members=("money",), days_ago=400)]) is None
    for status in ("entered-in-error", "cancelled"):
        assert screened([yes, observation("panel", "96777-8", members=("yes",), status=status)]) is None
    # Listed by a grouping that is no screening panel (a local intake form), it stands for its screen.
    assert screened([yes, observation("intake", "intake", members=("yes",), system="http://hospital.example/f")]) == [
        "AHC HRSN"
    ]
