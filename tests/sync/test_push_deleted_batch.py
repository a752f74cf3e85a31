"""A resource deleted on the server while the case changed it, answered 410 Gone to its update.

sekmet and HAPI answer the ``If-Match`` update of a deleted resource with a version conflict (412,
409), which the push re-reads and finds gone (``test_push_deleted``). A server answering it 410 Gone
(Medplum; the in-memory server here), or 404, in an entry of a batch (a server taking no
transactions) had the case fail for good as 'the server refused Communication …', at every push: the
change could never reach the server nor the case be told the resource is gone. Sent in a
transaction, the whole transaction answered 410 failed the same way. It is the same conflict for
a person, settled the same ways.
"""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_ledger
from tests.servers import RunningServer
from tests.sync.test_push_deleted import deleted_while_changed, settled
from tests.sync.test_pull_server import stored

pytestmark = pytest.mark.server


@pytest.fixture
def fhir_server(memory_fhir: RunningServer) -> str:
    return memory_fhir.base_url


@pytest.fixture(params=["batch", "transaction"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """No transactions: each round goes out as a batch (no entry names another); or a transaction."""
    return settings.model_copy(update={"max_transaction_entries": 0 if request.param == "batch" else None})


async def test_an_update_answered_gone_is_a_conflict_written_again_when_local_is_kept(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case, conflict_id = await deleted_while_changed(store, client, raw, settings)

    assert (await settled(store, client, settings, conflict_id, "local")).created == 1
    assert stored(store, case.id) == case


async def test_an_update_answered_gone_is_let_go_when_the_server_side_is_kept(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings
) -> None:
    case, conflict_id = await deleted_while_changed(store, client, raw, settings)

    assert (await settled(store, client, settings, conflict_id, "server")).created == 0
    assert [c.id for c in stored(store, case.id).contacts] == [c.id for c in case.contacts if c.id != "contact-1"]
    with store.session(read_only=True) as s:
        assert get_ledger(s, settings.fhir_base, "Communication", "contact-1") is None
