"""Dates as hospitals write them: an Encounter or a screen dated only to a month or a year, a
Condition dated after the screening day. Each is read by what it says, through the store as a
screening keeps it (``screen_files``) and in a hook call's prefetch (``facts_from_resources``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_cm.identify import assess, facts_from_resources, load_rules, screen_files
from fhir_cm.store import Store, list_candidates, open_store

from .population import condition, encounter, patient, screen

SERVER = "https://ehr.example.org/fhir"
AS_OF = dt.date(2026, 5, 20)  # the window is 21 May 2025 - 20 May 2026


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


async def screened(store: Store, tmp_path: Path, resources: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    await screen_files(store, SERVER, [path], as_of=AS_OF)
    with store.session(read_only=True) as s:
        return {c.patient_id: c.reasons for c in list_candidates(s, SERVER, limit=100)}


def dated(resource: dict[str, Any], start: str) -> dict[str, Any]:
    resource["period"] = {"start": start}
    return resource


async def test_admissions_dated_to_a_month_or_a_year_count_where_their_whole_span_is_in_the_window(
    store: Store, tmp_path: Path
) -> None:
    def two(pid: str, first: str, second: str) -> list[dict[str, Any]]:
        return [
            patient(pid),
            dated(encounter(pid, "IMP", AS_OF, rid=f"{pid}-1"), first),
            dated(encounter(pid, "IMP", AS_OF, rid=f"{pid}-2"), second),
        ]

    found = await screened(
        store,
        tmp_path,
        [
            *two("months", "2025-09", "2026-02"),
            *two("month-and-day", "2025-06", "2026-04-02T10:00:00Z"),
            *two("straddling-the-start", "2025-05", "2026-02"),  # May 2025 may be before 21 May
            *two("straddling-as-of", "2026-02", "2026-05"),  # May 2026 may be after the 20th
            *two("a-year", "2025", "2026-02"),  # 2025 began before the window
        ],
    )
    assert {p: [r["text"] for r in rs] for p, rs in found.items()} == {
        "months": ["2 inpatient admissions in 365 days"],
        "month-and-day": ["2 inpatient admissions in 365 days"],
    }
    assert found["months"][0]["evidence"] == ["2025-09", "2026-02"]


async def test_a_readmission_dated_to_a_month_counts_only_if_every_day_of_it_is_within_30_days(
    store: Store, tmp_path: Path
) -> None:
    def stay(pid: str, rid: str, start: str, end: str | None) -> dict[str, Any]:
        out = encounter(pid, "IMP", AS_OF, rid=rid)
        out["period"] = {"start": start, **({"end": end} if end else {})}
        return out

    found = await screened(
        store,
        tmp_path,
        [
            patient("soon"),
            stay("soon", "soon-1", "2026-01-20", "2026-01-31"),
            stay("soon", "soon-2", "2026-02", None),  # every day of February is within 30 days of 31 January
            patient("maybe"),
            stay("maybe", "maybe-1", "2026-01-02", "2026-01-10"),
            stay("maybe", "maybe-2", "2026-02", None),  # a day after 9 February is not
        ],
    )
    assert {r["rule"] for r in found["soon"]} == {"frequent-admissions", "readmission"}
    assert {r["rule"] for r in found["maybe"]} == {"frequent-admissions"}


async def test_a_positive_screen_dated_to_a_month_counts_where_the_month_is_in_the_window(
    store: Store, tmp_path: Path
) -> None:
    def screened_in(pid: str, when: str) -> list[dict[str, Any]]:
        obs = screen(pid, AS_OF, positive=True, rid=f"{pid}-s")
        obs["effectiveDateTime"] = when
        return [patient(pid), obs]

    found = await screened(
        store, tmp_path, [*screened_in("april", "2026-04"), *screened_in("may", "2026-05"), *screened_in("y", "2025")]
    )
    assert list(found) == ["april"]
    assert found["april"][0]["text"] == "a positive social-needs screen (AHC HRSN)"


def test_conditions_dated_after_the_screening_day_do_not_count_on_it() -> None:
    def on(code: str, **dates: str) -> dict[str, Any]:
        return {**condition("p", code, rid=f"c-{code}"), **dates}

    resources = [
        patient("p"),
        on("E11", onsetDateTime="2020-03-01"),
        on("I10", recordedDate="2026-05-20T09:00:00Z"),  # the day itself
        on("J44", onsetDateTime="2026-06-01"),  # after: not known on 20 May
        on("N18", onsetDateTime="2026"),  # a year that had begun: counted in it
        on("C50.9", recordedDate="2026-07-02"),
    ]
    facts = facts_from_resources("p", resources)
    past = assess(facts, load_rules(), AS_OF)
    assert [(r.rule, r.text) for r in past.reasons] == [
        ("multiple-chronic-conditions", "3 chronic conditions"),
    ]
    later = assess(facts, load_rules(), dt.date(2026, 8, 1))
    assert {r.rule: r.text for r in later.reasons}["multiple-chronic-conditions"] == "4 chronic conditions"
    assert "high-risk-condition" in {r.rule for r in later.reasons}


def test_a_screen_dated_by_effective_instant_counts_on_its_day() -> None:
    """FHIR's ``effective[x]`` may be an instant (R4 and R5): such a screen, without ``issued``, was
    dropped as undated, its positive answer lost."""
    obs = screen("p", AS_OF, positive=True, rid="s-instant")
    obs["effectiveInstant"] = obs.pop("effectiveDateTime").replace("2026-05-20", "2026-04-02") + "T09:30:00Z"
    assessment = assess(facts_from_resources("p", [patient("p"), obs]), load_rules(), AS_OF)
    assert [r.text for r in assessment.reasons] == ["a positive social-needs screen (AHC HRSN)"]
