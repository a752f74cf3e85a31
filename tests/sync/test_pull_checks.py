"""The pull's checks in a worker process give the answers the pull gives itself, and a pull using the
worker takes in and quarantines exactly what one without it does (sekmet-fhir over real HTTP)."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from fhir_cm.checks import TOO_DEEP_PROBLEM, problem_of, problems_of
from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import case_to_resources
from fhir_cm.store import Store, get_case, list_quarantine
from fhir_cm.sync import _checks, _pull, pull
from fhir_cm.sync._checks import Checker
from tests.mapping.builders import full_case
from tests.sync.seeding import seed_case

SYSTEM = "urn:test:checks"


def a_case() -> Case:
    return full_case(
        id=f"case-{uuid.uuid4().hex[:12]}", patient=Party(kind="patient", id=f"pat-{uuid.uuid4().hex[:12]}")
    )


def unreadable_goal(system: str, patient: str) -> dict[str, Any]:
    """Valid FHIR, but no goal a case can hold (a status the model has no place for, no dates)."""
    return {
        "resourceType": "Goal",
        "identifier": [{"system": system, "value": f"goal-{uuid.uuid4().hex[:8]}"}],
        "lifecycleStatus": "entered-in-error",
        "description": {"text": "unreadable goal"},
        "subject": {"reference": f"Patient/{patient}"},
    }


@pytest.fixture
async def worker() -> AsyncIterator[Checker]:
    checker = Checker("R4", SYSTEM, offload_after=1)
    assert await checker.start(), "the check worker did not start"
    yield checker
    checker.close()


async def test_the_worker_answers_as_the_pull_does(worker: Checker) -> None:
    case = a_case()
    good = list(case_to_resources(case, "R4", SYSTEM).values())
    not_fhir = {"resourceType": "Goal", "lifecycleStatus": 7, "subject": "Patient/x"}  # refused by the strict model
    not_ours = {"resourceType": "Basic", "code": {"text": "a kind of resource no case holds"}}
    page = [*good, unreadable_goal(SYSTEM, case.patient.id), not_ours, not_fhir]

    answers = await worker.problems(worker.submit(page))

    assert answers == [problem_of(r, "R4", SYSTEM) for r in page]
    assert answers is not None and answers[: len(good)] == [None] * len(good)
    assert answers[-3] is None  # a goal only its case shows to be unreadable: the pull finds it later
    assert answers[-2] is not None and answers[-2].startswith("not readable as case data")
    assert answers[-1] is not None and "lifecycleStatus" in answers[-1]
    assert worker.offloaded == 1


def test_a_resource_of_no_type_the_release_has_gets_a_reason_not_an_error() -> None:
    assert problem_of({"resourceType": "Transport", "status": "completed"}, "R4", SYSTEM) == (
        "Transport is not a R4 resource type"
    )
    assert problem_of({"id": "x"}, "R4", SYSTEM) == "a resource without a resourceType"


async def test_a_small_pull_checks_in_its_own_process_and_a_large_one_starts_a_worker() -> None:
    checker = Checker("R4", SYSTEM, offload_after=500)
    page = [{"resourceType": "Goal"}] * 200
    try:
        assert checker.submit(page) is None and checker.submit(page) is None
        assert not checker.started  # 400 seen: no process started for a pull this small
        assert await checker.problems(None) is None
        assert checker.submit(page) is None  # 600 seen: the worker starts; this page is checked inline
        assert checker.started
    finally:
        checker.close()
    assert checker.offloaded == 0 and not checker.started


@pytest.mark.server
async def test_a_pull_checked_by_the_worker_takes_in_and_quarantines_the_same(
    store: Store, raw: AsyncFhirClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = settings.identifier_system
    checker = Checker("R4", system, offload_after=1)
    assert await checker.start()
    monkeypatch.setattr(_pull, "Checker", lambda version, system, types: checker)
    case = a_case()
    await seed_case(raw, case, system)
    bad = await raw.create(unreadable_goal(system, case.patient.id))

    report = await pull(store, raw, settings)

    assert checker.offloaded >= 1  # the pages were checked by the worker, not in the pull
    assert report.quarantined == 1 and report.new_cases == 1
    with store.session(read_only=True) as s:
        assert get_case(s, case.id) == case
        (held,) = list_quarantine(s, source=raw.base_url)
    assert (held.resource_type, held.server_id) == ("Goal", bad.id)
    assert held.reason.startswith("not readable as case data") and "unreadable goal" not in held.reason


async def test_where_no_worker_can_start_the_pages_are_checked_in_the_pull(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemonic process (some process managers run workers so) may not start children: the
    process start fails, and every page is checked in the pull instead, with no error."""

    class NoChildren(concurrent.futures.ProcessPoolExecutor):
        def submit(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(_checks.concurrent.futures, "ProcessPoolExecutor", NoChildren)
    checker = Checker("R4", SYSTEM, offload_after=1)
    page = [{"resourceType": "Goal"}]
    try:
        assert checker.submit(page) is None  # tried to start the worker: could not
        assert checker.submit(page) is None and not await checker.start()
    finally:
        checker.close()
    assert checker.offloaded == 0


def test_the_worker_loads_the_checks_without_the_store_or_the_sync_layer() -> None:
    """What a worker process imports to check a page: the models and the mapping, not the database
    drivers, the sync layer or the web stack (a spawned worker pays for each in start time and memory)."""
    heavy = ("sqlalchemy", "psycopg", "fhir_cm.store", "fhir_cm.sync", "fastapi")
    probe = f"import sys, fhir_cm.checks; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_a_resource_too_deep_to_check_gets_a_reason_not_a_recursion_error() -> None:
    # About 125 extensions within each other: JSON that parses and the store could keep, but the
    # models recurse per level; the RecursionError ended every pull (or its worker) at that page.
    # (sekmet itself refuses to store one this deep, so no server here can serve it to a pull.)
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "v"}
    for _ in range(125):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    deep = {**unreadable_goal(SYSTEM, "p-1"), "extension": [extension]}
    page = [deep, unreadable_goal(SYSTEM, "p-1")]

    assert problem_of(deep, "R4", SYSTEM) == TOO_DEEP_PROBLEM
    assert problems_of(orjson.dumps(page), "R4", SYSTEM) == [TOO_DEEP_PROBLEM, None]  # the worker's call
