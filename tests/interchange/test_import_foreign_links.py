"""A link between a case's resources by an absolute URL is one only at the base the copy came from (a
file's fullUrls, a pulled copy's server): a Goal addressing ``https://other.example/fhir/Condition/x``
addresses another server's Condition, not the case's need x, and keeps that reference as written
through an export, the case's own links changed or not."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.interchange import export_cases, import_files
from fhir_cm.interchange._view import read_view
from fhir_cm.mapping import ResourceKey, case_to_resources
from fhir_cm.store import Store, StoredResource, content_hash, get_case, save_case
from tests.mapping.builders import full_case

BASE = "https://ehr.example.org/fhir"
OTHER = "https://other.example/fhir"


def copies(settings: Settings, link: Callable[[str], str]) -> tuple[Case, dict[ResourceKey, dict[str, Any]]]:
    """A case's resources as its server holds them (ids given), goal-1's ``addresses`` spelt by ``link``
    (of ``Condition/need-1``)."""
    case = full_case()
    bare = case_to_resources(case, "R4", settings.identifier_system)
    out = case_to_resources(case, "R4", settings.identifier_system, server_ids={k: k.value for k in bare})
    goal = out[ResourceKey("Goal", "goal-1")]
    assert goal["addresses"] == [{"reference": "Condition/need-1"}]
    goal["addresses"] = [{"reference": link("Condition/need-1")}]
    return case, out


def import_at_base(
    tmp_path: Path, store: Store, settings: Settings, case_id: str, resources: dict[ResourceKey, dict[str, Any]]
) -> Case:
    """Import ``resources`` as a server at BASE exports them (fullUrls at its base); the case read."""
    entries = [{"fullUrl": f"{BASE}/{k.type}/{r['id']}", "resource": r} for k, r in resources.items()]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    import_files(store, [path], settings)
    with store.session(read_only=True) as s:
        read = get_case(s, case_id)
    assert read is not None
    return read


def imported(tmp_path: Path, store: Store, settings: Settings, link: Callable[[str], str]) -> Case:
    case, resources = copies(settings, link)
    return import_at_base(tmp_path, store, settings, case.id, resources)


def addresses(case: Case) -> dict[str, list[str]]:
    return {g.id: list(g.addresses) for g in case.goals}


@pytest.mark.parametrize("link", [lambda r: r, lambda r: f"{BASE}/{r}"], ids=["relative", "at-the-files-base"])
def test_a_goal_addressing_the_cases_need_by_a_local_reference_addresses_it(
    tmp_path: Path, store: Store, settings: Settings, link: Callable[[str], str]
) -> None:
    case = imported(tmp_path, store, settings, link)
    assert addresses(case) == {"goal-1": ["need-1"], "goal-2": ["need-2"]}


def test_a_goal_addressing_another_servers_condition_addresses_none_of_the_case_and_keeps_its_reference(
    tmp_path: Path, store: Store, settings: Settings
) -> None:
    foreign = f"{OTHER}/Condition/need-1"
    case = imported(tmp_path, store, settings, lambda r: f"{OTHER}/{r}")

    assert addresses(case) == {"goal-1": [], "goal-2": ["need-2"]}
    # The case manager links the goal to the case's other need: the other server's reference stays.
    case.goals[0].addresses = ["need-2"]
    with store.session() as s:
        save_case(s, case)
    (goal,) = [
        e["resource"]
        for e in export_cases(store, settings, case_id=case.id)["entry"]
        if e["resource"]["resourceType"] == "Goal" and e["resource"]["id"] == "goal-1"
    ]
    assert goal["addresses"] == [{"reference": foreign}, {"reference": "Condition/need-2"}]


def stored(settings: Settings, source: str, link: Callable[[str], str]) -> list[StoredResource]:
    case, resources = copies(settings, link)
    now = dt.datetime.now(dt.UTC)
    return [
        StoredResource(resource_type=k.type, key=k.value, case_id=case.id, fhir_version="R4", raw=r,
                       content_hash=content_hash(r), source=source, updated_at=now)
        for k, r in resources.items()
    ]  # fmt: skip


@pytest.mark.parametrize(("at", "linked"), [(BASE, ["need-1"]), (OTHER, [])], ids=["its-servers", "another-servers"])
def test_a_pulled_copy_links_by_an_absolute_url_only_at_the_server_it_came_from(
    settings: Settings, at: str, linked: list[str]
) -> None:
    """A pulled copy keeps the references as its server wrote them: at its own base, the case's."""
    view = read_view("case-1", stored(settings, BASE, lambda r: f"{at}/{r}"), settings.identifier_system)
    assert addresses(view.case) == {"goal-1": linked, "goal-2": ["need-2"]}
