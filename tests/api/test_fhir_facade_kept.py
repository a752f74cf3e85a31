"""The façade's copies kept between starts: a second start maps only what changed since and serves
exactly what mapping would; copies made with other code or settings, unreadable or failing to be
kept, cost time and nothing else; a request never writes one."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

import fhir_cm.api.facade._copies as facade_copies
import fhir_cm.api.facade._index as facade_index
from fhir_cm import decimals
from fhir_cm.api.facade import FacadeIndex
from fhir_cm.api.facade._index import _View
from fhir_cm.api.facade._params import parse_search
from fhir_cm.domain import Case
from fhir_cm.mapping import ResourceKey, case_plan, case_to_resources
from fhir_cm.store import Store, open_store, put_resources, save_case
from fhir_cm.store._tables import FacadeCopyRow
from fhir_cm.synthetic import generate_cases
from tests.pg import temporary_database, temporary_schema

SYSTEM = "urn:fhir-cm:id"
T0 = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
HOSPITAL = "https://hospital.example/fhir"


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with temporary_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store of several cases, one with a copy a hospital server sent (its own extension, a decimal as
    written, an absolute reference at its own base), on SQLite, then on the real PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        with open_store(url) as opened:
            yield _seeded(opened)
        return
    with temporary_schema(request.getfixturevalue("pg_database")) as url, open_store(url) as opened:
        yield _seeded(opened)


def _seeded(store: Store) -> Store:
    cases = list(generate_cases(6, 31))
    with store.session() as s:
        for case in cases:
            save_case(s, case, now=T0)
    case = cases[0]
    ids = {key: key.value for key, _, _ in case_plan(case)}
    goal = case.goals[0].id
    raw = dict(case_to_resources(case, "R4", SYSTEM, server_ids=ids)[ResourceKey("Goal", goal)])
    raw["id"] = "srv-17"
    raw["subject"] = {"reference": f"{HOSPITAL}/Patient/{case.patient.id}"}
    raw["extension"] = [{"url": "https://hospital.example/score", "valueDecimal": "@"}]
    exact = decimals.loads(decimals.dumps(raw).replace(b'"@"', b"1.50"))
    with store.session() as s:
        put_resources(s, case.id, [(goal, exact)], fhir_version="R4", source=HOSPITAL, now=T0)
    return store


@pytest.fixture
def mapped(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the cases the façade maps, as it maps them."""
    calls: list[str] = []
    monkeypatch.setattr(facade_index, "case_to_resources", counting_with(facade_index.case_to_resources, calls))
    return calls


def started(store: Store, version: Any = "R4", system: str = SYSTEM) -> _View:
    """A new process's index, warmed as ``fhir-cm serve`` warms it at start-up."""
    index = FacadeIndex(system, bases=[HOSPITAL])
    index.warm(store, version)
    return index._views[version]


def held(view: _View) -> dict[tuple[str, str], Any]:
    return {(r.type, r.id): r for resources in view.by_type.values() for r in resources.values()}


def all_case_ids(store: Store) -> list[str]:
    with store.session(read_only=True) as s:
        return sorted(facade_index.case_stamps(s))


def test_a_second_start_maps_only_what_changed_and_serves_exactly_what_mapping_does(
    store: Store, mapped: list[str]
) -> None:
    every = all_case_ids(store)
    first = started(store)
    assert sorted(mapped) == every
    mapped.clear()

    second = started(store)
    assert mapped == [], "every case was read from its kept copy"
    assert held(second) == held(first), "each resource equal: body, version, time and every search value"
    assert second.stamps == first.stamps and second.failed == set()
    kinds = {p: v for r in held(second).values() for p, v in r.values.items() if v}
    assert any(type(v[0][0]) is dt.datetime for v in kinds.values()), "dates came back as instants"

    changed = next(iter(generate_cases(6, 31)))
    changed = changed.model_copy(update={"plan_summary": "Reviewed: plan continues."})
    other = every[3] if every[3] != changed.id else every[4]
    with store.session() as s:
        save_case(s, changed)
        put_resources(s, other, [("extra", {"resourceType": "Goal", "id": "extra"})], fhir_version="R4")
    third = started(store)
    assert sorted(mapped) == sorted([changed.id, other]), "a changed case and a new stored copy are mapped again"
    mapped.clear()
    fourth = started(store)
    assert mapped == [] and held(fourth) == held(third), "and kept again"


def test_copies_made_with_other_code_or_settings_are_not_used(
    store: Store, mapped: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    every = all_case_ids(store)
    started(store)
    mapped.clear()
    started(store, system="urn:other:id")
    assert sorted(mapped) == every, "another identifier system serves other identifiers"
    mapped.clear()
    started(store, version="R5")
    assert sorted(mapped) == every, "each FHIR version is kept on its own"
    mapped.clear()
    monkeypatch.setattr(facade_copies, "_code", lambda: "another release")
    started(store)
    assert sorted(mapped) == every, "other code may map otherwise"


def test_the_code_fingerprint_follows_the_mapping_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rules = tmp_path / "mappings"
    rules.mkdir()
    (rules / "codes.yaml").write_text("a: 1\n")
    monkeypatch.setattr(facade_copies, "mappings_dir", lambda: rules)
    facade_copies._code.cache_clear()
    try:
        before = facade_copies._code()
        (rules / "codes.yaml").write_text("a: 2\n")
        facade_copies._code.cache_clear()
        assert facade_copies._code() != before
    finally:
        facade_copies._code.cache_clear()


def test_a_copy_that_cannot_be_read_is_mapped_again_and_replaced(
    store: Store, mapped: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    every = all_case_ids(store)
    first = started(store)
    mapped.clear()
    with store.session() as s:
        s.execute(update(FacadeCopyRow).where(FacadeCopyRow.case_id == every[1]).values(payload=b"not a copy"))
    with caplog.at_level(logging.WARNING):
        second = started(store)
    assert mapped == [every[1]]
    assert held(second) == held(first)
    assert "kept copy of a case could not be read" in caplog.text and every[1] not in caplog.text
    mapped.clear()
    started(store)
    assert mapped == []


def test_a_failure_to_keep_copies_is_logged_and_the_start_goes_on(
    store: Store, mapped: list[str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("permission denied for table facade_copies"))

    monkeypatch.setattr(facade_index, "keep_facade_copies", refused)
    with caplog.at_level(logging.WARNING):
        view = started(store)
    assert len(view.stamps) == len(all_case_ids(store)) and view.failed == set()
    assert "could not be kept for the next start (StoreUnavailable)" in caplog.text, "as the store reports it"
    assert "permission denied" not in caplog.text


def test_a_case_that_cannot_be_mapped_is_not_kept(
    store: Store, mapped: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    every = all_case_ids(store)
    real = case_to_resources  # the mapping itself, not the counting one

    def failing(case: Case, *args: Any, **kwargs: Any) -> Any:
        if case.id == every[2]:
            raise ValueError("a mapping bug")
        return real(case, *args, **kwargs)

    monkeypatch.setattr(facade_index, "case_to_resources", failing)
    assert started(store).failed == {every[2]}
    mapped.clear()
    monkeypatch.setattr(facade_index, "case_to_resources", counting_with(real, mapped))
    assert started(store).failed == set()
    assert mapped == [every[2]], "the case left out is mapped at the next start, the others are read"


def counting_with(real: Any, calls: list[str]) -> Any:
    def counting(case: Case, *args: Any, **kwargs: Any) -> Any:
        calls.append(case.id)
        return real(case, *args, **kwargs)

    return counting


def test_a_request_that_maps_a_changed_case_keeps_no_copy(store: Store, mapped: list[str]) -> None:
    """No write on the read path: the case a request mapped is mapped again by the next start."""
    index = FacadeIndex(SYSTEM, bases=[HOSPITAL])
    index.warm(store, "R4")
    changed = next(iter(generate_cases(6, 31))).model_copy(update={"plan_summary": "Changed."})
    with store.session() as s:
        save_case(s, changed)
    mapped.clear()
    found, _ = index.search(store, "R4", "CarePlan", parse_search("CarePlan", []).criteria)
    assert mapped == [changed.id] and found
    mapped.clear()
    started(store)
    assert mapped == [changed.id]
