"""`fhir-cm worker --once` against the real server: one push round and one pull round, like `push` and `pull`."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, save_case
from fhir_cm.synthetic import generate_cases
from tests.sync.seeding import seed_case
from tests.sync.server_state import ServerState, expected, server_state
from tests.sync.test_pull_server import a_case

pytestmark = pytest.mark.server


async def _seed(fhir_server: str, elsewhere: Case, system: str) -> None:
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
        await seed_case(raw, elsewhere, system)


async def _state(fhir_server: str, system: str) -> ServerState:
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
        return await server_state(raw, system)


def test_one_worker_round_pushes_the_outbox_and_pulls_every_case_type(
    store: Store, fhir_server: str, settings: Settings, system: str
) -> None:
    local = next(iter(generate_cases(1, seed=31)))
    with store.session() as s:
        save_case(s, local)  # waiting in the outbox
    elsewhere = a_case()  # pushed by another store: goals and a care team the pull must bring in
    asyncio.run(_seed(fhir_server, elsewhere, system))
    assert elsewhere.goals and elsewhere.team
    env = {"FHIR_CM_DATABASE_URL": settings.database_url, "FHIR_CM_IDENTIFIER_SYSTEM": system}

    result = CliRunner().invoke(app, ["worker", "--once", "--fhir-base", fhir_server], env=env)

    assert result.exit_code == 0, result.output
    state = asyncio.run(_state(fhir_server, system))
    wanted = expected([local], system)
    assert {k: state.counts[k] for k in wanted} == wanted  # every resource of the local case, once
    with store.session(read_only=True) as s:
        pulled = get_case(s, elsewhere.id)
    assert pulled is not None
    # Goal and CareTeam included: the pull did not skip them (the tracker may add follow-ups).
    assert (pulled.goals, pulled.team, pulled.needs) == (elsewhere.goals, elsewhere.team, elsewhere.needs)
