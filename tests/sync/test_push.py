"""Push against a real R4 server (sekmet-fhir over loopback HTTP): exact end state, idempotent re-runs."""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, GoalStatus
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import (
    ConflictStatus,
    OutboxStatus,
    Store,
    get_case,
    list_conflicts,
    list_outbox,
    open_store,
    save_case,
)
from fhir_cm.sync import push_cases, push_pending
from fhir_cm.synthetic import generate_cases
from tests.sync.server_state import CASE_TYPES, expected, provenances_for, server_state

pytestmark = pytest.mark.server

N = 4


@pytest.fixture
def cases() -> list[Case]:
    return list(generate_cases(N, seed=41))


def case_resource_count(cases: list[Case], system: str) -> int:
    return sum(n for (t, _), n in expected(cases, system).items() if t in CASE_TYPES)


def with_goal(case: Case, **changes: object) -> tuple[Case, str]:
    """The case with its first goal changed, and that goal's id."""
    goal = case.goals[0]
    goals = [goal.model_copy(update=changes), *case.goals[1:]]
    return case.model_copy(update={"goals": goals}), goal.id


async def test_push_creates_every_resource_exactly_once_with_resolving_references(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, cases: list[Case], system: str
) -> None:
    report = await push_cases(store, client, settings, cases)

    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
    assert state.dangling() == []
    assert (report.cases, report.failed, report.updated, report.unchanged) == (N, 0, 0, 0)
    assert report.created == case_resource_count(cases, system)
    assert {i.status for i in list_outbox_all(store)} == {OutboxStatus.DONE}


def list_outbox_all(store: Store) -> list:  # type: ignore[type-arg]
    with store.session(read_only=True) as s:
        return list_outbox(s)


async def test_each_transaction_carries_a_provenance_naming_the_adapter_and_the_case_manager(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, cases: list[Case], system: str
) -> None:
    case = cases[0]
    await push_cases(store, client, settings, [case])

    state = await server_state(raw, system)
    written = {f"{t}/{r[0]['id']}" for (t, _), r in state.resources.items() if t in CASE_TYPES}
    provenances = await provenances_for(raw, written)
    assert len(provenances) == 1
    [prov] = provenances
    assert {t["reference"] for t in prov["target"]} == written
    assert prov["activity"]["coding"][0]["code"] == "CREATE"
    [agent] = prov["agent"]
    device = await raw.read("Device", agent["who"]["reference"].split("/")[1])
    assert {"system": system, "value": "fhir-cm-adapter"} in device["identifier"]
    assert case.case_manager is not None
    assert agent["onBehalfOf"]["reference"] == f"Practitioner/{case.case_manager.id}"


async def test_a_second_push_changes_nothing_and_makes_no_new_versions(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, cases: list[Case], system: str
) -> None:
    await push_cases(store, client, settings, cases)
    before = (await server_state(raw, system)).versions()

    again = await push_cases(store, client, settings, cases)

    assert (again.created, again.updated, again.failed, again.provenances) == (0, 0, 0, 0)
    assert again.unchanged == case_resource_count(cases, system)
    assert (await server_state(raw, system)).versions() == before


async def test_a_push_from_a_brand_new_store_duplicates_nothing(
    store: Store,
    client: AsyncFhirClient,
    raw: AsyncFhirClient,
    settings: Settings,
    cases: list[Case],
    system: str,
    tmp_path,
) -> None:
    await push_cases(store, client, settings, cases)
    before = (await server_state(raw, system)).versions()
    fresh = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'fresh.db'}"})

    with open_store(fresh.database_url) as other:
        report = await push_cases(other, client, fresh, cases)

    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
    assert (report.created, report.updated, report.failed) == (0, 0, 0)
    assert state.versions() == before


async def test_a_local_edit_gives_new_versions_to_the_changed_resources_only(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, cases: list[Case], system: str
) -> None:
    await push_cases(store, client, settings, cases)
    before = (await server_state(raw, system)).versions()
    case = cases[1]
    contact = case.contacts[0]
    edited = case.model_copy(
        update={"contacts": [contact.model_copy(update={"note": "Spoke again by phone."}), *case.contacts[1:]]}
    )
    with store.session() as s:
        save_case(s, edited)

    report = await push_pending(store, client, settings)

    after = (await server_state(raw, system)).versions()
    moved = {k for k in after if after[k] != before[k]}
    assert moved == {("Communication", contact.id)}
    assert (report.cases, report.updated, report.created, report.failed) == (1, 1, 0, 0)


async def test_a_server_edit_to_an_element_the_adapter_does_not_own_survives_a_local_update(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, cases: list[Case], system: str
) -> None:
    await push_cases(store, client, settings, cases)
    case, goal_id = with_goal(cases[2], target="Walks 300 m unaided")
    state = await server_state(raw, system)
    on_server = state.one("Goal", goal_id)
    note = [{"text": "Discussed at the ward round."}]
    await raw.update({**on_server, "note": note, "priority": {"text": "high"}})  # the pusher's ledger is now stale
    with store.session() as s:
        save_case(s, case)

    report = await push_pending(store, client, settings)

    goal = (await server_state(raw, system)).one("Goal", goal_id)
    assert goal["target"][0]["measure"]["text"] == "Walks 300 m unaided"
    assert goal["note"] == note and goal["priority"] == {"text": "high"}
    assert (report.failed, report.conflicts, report.updated) == (0, 0, 1)


async def test_a_clash_with_a_server_edit_is_recorded_as_a_conflict_and_not_overwritten(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, cases: list[Case], system: str
) -> None:
    await push_cases(store, client, settings, cases)
    was = cases[3].goals[0].status
    local, theirs = [s for s in (GoalStatus.ON_HOLD, GoalStatus.CANCELLED, GoalStatus.REJECTED) if s != was][:2]
    case, goal_id = with_goal(cases[3], status=local)
    on_server = (await server_state(raw, system)).one("Goal", goal_id)
    await raw.update({**on_server, "lifecycleStatus": theirs.value})
    with store.session() as s:
        save_case(s, case)

    report = await push_pending(store, client, settings)

    assert (report.failed, report.conflicts) == (1, 1)
    assert report.failures[0].permanent and report.failures[0].case_id == case.id
    assert (await server_state(raw, system)).one("Goal", goal_id)["lifecycleStatus"] == theirs.value
    with store.session(read_only=True) as s:
        [conflict] = list_conflicts(s, case_id=case.id, status=ConflictStatus.OPEN)
        [row] = list_outbox(s, case_id=case.id, status=OutboxStatus.FAILED)
        assert get_case(s, case.id) == case
    assert (conflict.resource_type, conflict.resource_key) == ("Goal", goal_id)
    assert "lifecycleStatus" in conflict.fields
    assert conflict.server is not None and conflict.server["lifecycleStatus"] == theirs.value
    assert row.last_error is not None and "conflict" in row.last_error


@pytest.mark.parametrize(("concurrency", "batch_size"), [(1, 7), (1, 3), (2, 2)])
async def test_pipelined_waves_and_batches_land_whole_and_a_second_store_adds_nothing(
    store: Store,
    client: AsyncFhirClient,
    raw: AsyncFhirClient,
    settings: Settings,
    system: str,
    tmp_path,
    concurrency: int,
    batch_size: int,
) -> None:
    """The first cases of a batch are pushed while the rest are still being prepared (one case at a
    time, a batch of seven: one out at once, six prepared meanwhile), and the next batch is claimed
    and prepared while a batch's last cases finish. Every case must land exactly once, and a
    brand-new store (whose cases are all prepared against the server) must find all of it."""
    many = list(generate_cases(7, seed=43))
    one_at_a_time = settings.model_copy(update={"push_concurrency": concurrency, "push_batch_size": batch_size})

    report = await push_cases(store, client, one_at_a_time, many)

    state = await server_state(raw, system)
    assert state.counts == expected(many, system)
    assert state.dangling() == []
    assert (report.cases, report.failed, report.created) == (7, 0, case_resource_count(many, system))
    before = state.versions()
    with open_store(f"sqlite:///{tmp_path / 'fresh.db'}") as other:
        again = await push_cases(other, client, one_at_a_time, many)
    assert (again.created, again.updated, again.failed) == (0, 0, 0)
    assert (await server_state(raw, system)).versions() == before
