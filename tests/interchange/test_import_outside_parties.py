"""A file naming a practitioner by an absolute URL at another base than its own (its fullUrls') names
another server's practitioner — an outside party — not the local one of that id; an export keeps the
reference as the file wrote it, whatever else the case manager changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Acuity, Case, Party
from fhir_cm.interchange import export_cases
from fhir_cm.mapping import ResourceKey, case_to_resources
from fhir_cm.store import Store, save_case
from tests.interchange.test_import_foreign_links import BASE, OTHER, import_at_base
from tests.mapping.builders import MANAGER, full_case


def imported(tmp_path: Path, store: Store, settings: Settings, at: str) -> tuple[Case, dict[str, Any]]:
    """full_case's resources as a server at BASE exported them, its case manager (on the episode and the
    care team) named at ``at``; the case imported, and that Reference."""
    case = full_case()
    bare = case_to_resources(case, "R4", settings.identifier_system)
    resources = case_to_resources(case, "R4", settings.identifier_system, server_ids={k: k.value for k in bare})
    manager = {"reference": f"{at}/Practitioner/{MANAGER.id}", "type": "Practitioner", "display": "Dr Elsewhere"}
    resources[ResourceKey("EpisodeOfCare", case.id)]["careManager"] = manager
    for participant in resources[ResourceKey("CareTeam", f"{case.id}-careteam")]["participant"]:
        if participant["id"] == "tm-1":
            participant["member"] = manager
    return import_at_base(tmp_path, store, settings, case.id, resources), manager


@pytest.mark.parametrize(("at", "server"), [(BASE, None), (OTHER, OTHER)], ids=["the-files-own", "another-servers"])
def test_a_practitioner_is_local_only_at_the_files_own_base(
    tmp_path: Path, store: Store, settings: Settings, at: str, server: str | None
) -> None:
    case, _ = imported(tmp_path, store, settings, at)
    named = Party(kind="practitioner", id=MANAGER.id, name="Dr Elsewhere", server=server)
    assert case.case_manager == named
    assert [m.party for m in case.team if m.id == "tm-1"] == [named]


def test_an_outside_manager_and_member_are_exported_as_the_file_wrote_them_after_a_change(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    case, manager = imported(tmp_path, store, settings, OTHER)
    with store.session() as s:
        save_case(s, case.model_copy(update={"acuity": Acuity.LOW}))

    exported = {
        (e["resource"]["resourceType"], e["resource"]["id"]): e["resource"]
        for e in export_cases(store, settings, case_id=case.id)["entry"]
    }

    episode = exported[("EpisodeOfCare", case.id)]
    assert episode["careManager"] == manager
    assert any("valueCodeableConcept" in e for e in episode["extension"])  # the change went out
    team = exported[("CareTeam", f"{case.id}-careteam")]
    assert [p["member"] for p in team["participant"] if p["id"] == "tm-1"] == [manager]
