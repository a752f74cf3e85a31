"""export_cases: adapter-made cases, imported ones, versions, and the round trip through a file."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, Goal
from fhir_cm.interchange import UnknownCaseError, export_cases, import_files
from fhir_cm.store import Store, get_case, list_cases, save_case
from fhir_cm.synthetic import generate_cases
from tests.fixtures_hl7 import FIXTURES
from tests.mapping.fhir_check import validate_bundle

from .conftest import SYSTEM


def types(bundle: dict[str, Any]) -> list[str]:
    return sorted(e["resource"]["resourceType"] for e in bundle.get("entry", []))


def save(store: Store, *cases: Case) -> None:
    with store.session() as s:
        for case in cases:
            save_case(s, case)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_generated_cases_export_valid_and_reimport_equal(
    tmp_path: Path, new_store: Callable[[], Store], settings: Settings, version: str
) -> None:
    cases = list(generate_cases(6, seed=11))
    source = new_store()
    save(source, *cases)

    bundle = export_cases(source, settings, fhir_version=version)
    validate_bundle(bundle, version)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(bundle))
    target = new_store()
    report = import_files(target, [path], settings)

    assert report.versions == {version: len(bundle["entry"])} and report.raw_only == 0
    with target.session(read_only=True) as s:
        assert sorted(list_cases(s), key=lambda c: c.id) == sorted(cases, key=lambda c: c.id)
    again = export_cases(target, settings)
    key = lambda e: e["fullUrl"]
    assert sorted(again["entry"], key=key) == sorted(bundle["entry"], key=key)


def test_an_adapter_case_exports_every_resource_it_maps_to(store: Store, settings: Settings) -> None:
    (case,) = generate_cases(1, seed=3)
    save(store, case)

    bundle = export_cases(store, settings, case_id=case.id)

    assert {"EpisodeOfCare", "CarePlan"} <= set(types(bundle))
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in bundle["entry"])
    for entry in bundle["entry"]:
        assert any(i.get("system") == SYSTEM for i in entry["resource"]["identifier"])


def test_an_imported_case_invents_nothing_and_a_new_goal_comes_out(store: Store, settings: Settings) -> None:
    paths = [FIXTURES / "r4" / f"{n}.json" for n in ("EpisodeOfCare-example", "Goal-stop-smoking", "Encounter-home")]
    import_files(store, paths, settings)
    before = export_cases(store, settings)
    with store.session() as s:
        case = get_case(s, "example")
        assert case is not None
        case.goals.append(Goal(id="walk-daily", description="Walk every day", due=dt.date(2015, 1, 1)))
        save_case(s, case)

    after = export_cases(store, settings)

    assert types(before) == ["Encounter", "EpisodeOfCare", "Goal"]
    assert types(after) == ["Encounter", "EpisodeOfCare", "Goal", "Goal"]
    assert before["entry"] == [e for e in after["entry"] if e["resource"].get("id") is not None]
    (new,) = [e["resource"] for e in after["entry"] if e["resource"].get("id") is None]
    assert new["identifier"] == [{"system": SYSTEM, "value": "walk-daily"}]
    assert new["description"]["text"] == "Walk every day"


def test_removing_an_imported_entity_drops_its_resource(store: Store, settings: Settings) -> None:
    paths = [FIXTURES / "r4" / f"{n}.json" for n in ("EpisodeOfCare-example", "Goal-stop-smoking")]
    import_files(store, paths, settings)
    with store.session() as s:
        case = get_case(s, "example")
        assert case is not None
        case.goals.clear()
        save_case(s, case)

    assert types(export_cases(store, settings)) == ["EpisodeOfCare"]


def test_one_case_or_an_unknown_one(store: Store, settings: Settings) -> None:
    a, b = generate_cases(2, seed=5)
    save(store, a, b)

    only_a = export_cases(store, settings, case_id=a.id)
    everything = export_cases(store, settings)

    assert 0 < len(only_a["entry"]) < len(everything["entry"])
    with pytest.raises(UnknownCaseError, match="no case nope"):
        export_cases(store, settings, case_id="nope")


def test_an_empty_store_exports_an_empty_collection(store: Store, settings: Settings) -> None:
    bundle = export_cases(store, settings)

    assert bundle == {"resourceType": "Bundle", "type": "collection"}
    validate_bundle(bundle, "R4")
