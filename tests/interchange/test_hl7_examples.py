"""Every official HL7 example of the seven case types: imported and exported unchanged, and valid in the other version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.interchange import export_cases, import_files
from fhir_cm.store import Store, get_case, get_resource, list_cases, save_case
from tests.fixtures_hl7 import (
    CASE_MANAGEMENT_TYPES,
    Hl7Example,
    example_params,
    hl7_examples,
)
from tests.mapping.fhir_check import validate, validate_bundle

SEVEN = example_params(types=CASE_MANAGEMENT_TYPES)


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def valid_in(resource: dict[str, Any], version: str) -> bool:
    try:
        validate(resource, version)
    except ValueError:
        return False
    return True


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle.get("entry", [])]


def find(bundle: dict[str, Any], resource_type: str, rid: str) -> list[dict[str, Any]]:
    return [r for r in resources(bundle) if r["resourceType"] == resource_type and r.get("id") == rid]


@pytest.mark.parametrize("example", SEVEN)
def test_example_comes_back_unchanged_and_valid_in_the_other_version(
    example: Hl7Example, store: Store, settings: Settings
) -> None:
    original = example.load()

    report = import_files(store, [example.path], settings)
    same = export_cases(store, settings)
    other = export_cases(store, settings, fhir_version=example.other_version)

    # A resource both releases' models accept is taken as R4 when nothing else in the import says otherwise.
    detected = "R4" if valid_in(original, example.other_version) else example.version
    assert report.resources == 1 and report.versions == {detected: 1}
    assert [without_meta(r) for r in resources(same)] == [without_meta(original)]
    (converted,) = resources(other)
    validate(converted, example.other_version)
    assert (converted["resourceType"], converted.get("id")) == (original["resourceType"], original.get("id"))


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_all_examples_imported_together_come_back_unchanged(
    version: str, new_store: Callable[[], Store], settings: Settings
) -> None:
    examples = hl7_examples((version,))  # type: ignore[arg-type]
    originals = {(e.resource_type, e.load()["id"]): e.load() for e in examples}
    store = new_store()

    first = import_files(store, [e.path for e in examples], settings)
    exported = export_cases(store, settings)
    again = import_files(store, [e.path for e in examples], settings)

    assert first.resources == len(examples)
    out = {(r["resourceType"], r.get("id")): r for r in resources(exported)}
    assert len(out) == len(resources(exported)) == len(originals), "a resource was lost, duplicated or invented"
    assert {k: without_meta(r) for k, r in out.items()} == {k: without_meta(r) for k, r in originals.items()}
    # Cross-references between examples put them into cases and the domain reads them.
    with store.session(read_only=True) as s:
        held = get_resource(s, "EpisodeOfCare", "example")
        assert held is not None
        case = get_case(s, held.case_id)
        assert case is not None and case.goals and case.stays
        assert get_resource(s, "Encounter", "home").case_id == held.case_id  # type: ignore[union-attr]
    assert first.raw_only > 0 and first.raw_only < first.resources
    # Re-importing changes nothing; the other version validates as a whole.
    assert (again.cases_created, again.cases_updated) == (0, 0)
    assert export_cases(store, settings) == exported
    other = "R5" if version == "R4" else "R4"
    validate_bundle(export_cases(store, settings, fhir_version=other), other)


def test_a_domain_change_changes_only_its_element(examples_store: Callable[[str], Store], settings: Settings) -> None:
    store = examples_store("R4")
    before = {(r["resourceType"], r.get("id")): r for r in resources(export_cases(store, settings))}
    with store.session() as s:
        held = get_resource(s, "Goal", "stop-smoking")
        assert held is not None
        case = get_case(s, held.case_id)
        assert case is not None
        goal = next(g for g in case.goals if g.id == "stop-smoking")
        new = "not-achieved" if goal.achievement != "not-achieved" else "achieved"
        goal.achievement = new  # type: ignore[assignment]
        save_case(s, case)

    after = {(r["resourceType"], r.get("id")): r for r in resources(export_cases(store, settings))}

    assert after.keys() == before.keys()
    changed = [k for k in before if before[k] != after[k]]
    assert changed == [("Goal", "stop-smoking")]
    old, now = before["Goal", "stop-smoking"], after["Goal", "stop-smoking"]
    assert [k for k in old.keys() | now.keys() if old.get(k) != now.get(k)] == ["achievementStatus"]
    codes = {c.get("code") for c in now["achievementStatus"]["coding"]}
    assert new in codes


def test_a_case_status_change_touches_only_the_episode_status(
    examples_store: Callable[[str], Store], settings: Settings
) -> None:
    store = examples_store("R5")
    before = {(r["resourceType"], r.get("id")): r for r in resources(export_cases(store, settings))}
    with store.session() as s:
        case = get_case(s, "example")
        assert case is not None and case.status != "on-hold"
        case.change_status("on-hold", case.status_history[-1].start if case.status_history else case.period.start)  # type: ignore[arg-type]
        save_case(s, case)

    after = {(r["resourceType"], r.get("id")): r for r in resources(export_cases(store, settings))}

    assert [k for k in before if before[k] != after[k]] == [("EpisodeOfCare", "example")]
    episode = after["EpisodeOfCare", "example"]
    assert episode["status"] == "onhold"
    changed = {
        k
        for k in before["EpisodeOfCare", "example"].keys() | episode.keys()
        if before["EpisodeOfCare", "example"].get(k) != episode.get(k)
    }
    assert changed <= {"status", "statusHistory"}
    with store.session(read_only=True) as s:
        assert len(list_cases(s)) > 1
