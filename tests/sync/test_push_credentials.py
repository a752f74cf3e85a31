"""Push with credentials the server refuses: the case waits, and says what the server answered.

Before a case's transaction, its patient and the other parties it names are looked up (and made
where missing) for the whole batch. A server refusing those requests — a token revoked or expired
past refreshing, here; a Patient profile it enforces on the minimal Patient, elsewhere — left each
case "could not be found or created on the server; will retry" and nothing more, at every push: the
server's answer, the one thing that says what to put right, was only in a log line without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient, BearerAuth
from fhir_cm.store import OutboxStatus, Store, list_outbox, open_store, save_case
from fhir_cm.sync import push_cases, push_pending
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer, sekmet_server
from tests.sync.server_state import server_state
from tests.sync.test_push import with_goal

pytestmark = pytest.mark.server

TOKEN = "the-token-the-server-knows"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server that takes only a bearer token it issued."""
    from sekmet.config import ServerAuth

    workdir = tmp_path_factory.mktemp("guarded-server")
    with sekmet_server(workdir, server_auth=ServerAuth(types=["bearer"], tokens=[TOKEN])) as server:
        yield server


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'push.db'}") as store:
        yield store


async def test_a_refused_token_leaves_the_case_waiting_with_the_servers_answer(
    guarded: RunningServer, local_store: Store, tmp_path: Path
) -> None:
    settings = Settings(database_url="sqlite://", fhir_base=guarded.base_url, identifier_system="urn:fhir-cm:test:401")
    case: Case = next(iter(generate_cases(1, seed=401)))
    async with AsyncFhirClient(guarded.base_url, auth=BearerAuth(TOKEN)) as good:
        first = await push_cases(local_store, good, settings, [case])
    assert first.ok, first.failures
    changed, goal_id = with_goal(case, target="Walks 300 m unaided")
    with local_store.session() as s:
        save_case(s, changed)

    async with AsyncFhirClient(guarded.base_url, auth=BearerAuth("a-revoked-token")) as revoked:
        refused = await push_pending(local_store, revoked, settings)

    [failure] = refused.failures
    assert not failure.permanent and failure.server is not None
    assert (failure.server.status, failure.server.code) == (401, "login")
    assert failure.reason.endswith(
        "could not be found or created on the server: HTTP 401 login: "
        "Unsupported or invalid Authorization scheme 'bearer'; will retry"
    )
    with local_store.session(read_only=True) as s:
        [row] = list_outbox(s, case_id=case.id, status=OutboxStatus.PENDING)
    assert row.last_error == failure.reason

    async with AsyncFhirClient(guarded.base_url, auth=BearerAuth(TOKEN)) as good:
        again = await push_pending(local_store, good, settings)
    async with AsyncFhirClient(guarded.base_url, auth=BearerAuth(TOKEN), enforce_capabilities=False) as raw:
        goal = (await server_state(raw, settings.identifier_system)).one("Goal", goal_id)
    assert again.ok and (again.cases, again.updated) == (1, 1)
    assert goal["target"][0]["measure"]["text"] == "Walks 300 m unaided"
