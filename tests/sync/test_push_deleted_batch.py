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
from fhir_cm.fhir import NO_RETRY, AsyncFhirClient
from fhir_cm.store import OutboxStatus, Store, get_ledger, list_conflicts, list_outbox, save_case
from fhir_cm.sync import push_cases, push_pending
from tests.servers import RunningServer
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.server_state import server_state
from tests.sync.test_push_deleted import deleted_while_changed, settled, with_note
from tests.sync.test_pull_server import a_case, stored

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
        # Kept: the next push still knows a reference to it as the case's own, and takes it out (_resolve).
        assert get_ledger(s, settings.fhir_base, "Communication", "contact-1") is not None


async def test_an_update_answered_gone_whose_confirming_read_fails_for_now_is_retried(
    store: Store, raw: AsyncFhirClient, settings: Settings, memory_fhir: RunningServer
) -> None:
    """The push reads a copy answered 404/410 again before calling it deleted (a 404 may be about a
    route); that read answered 503 left the update a refusal for good: a person was asked to look
    at a case a later push would have settled by itself."""
    case = a_case()
    gone: dict[str, str] = {}

    def reading_it_again(method: str, target: str, body: bytes) -> bool:
        return method == "POST" and b'"GET"' in body and f"Communication/{gone['id']}".encode() in body

    async with faulty_proxy(memory_fhir.root_url, rate=1.0, faults=("503",), when=reading_it_again) as (root, proxy):
        async with AsyncFhirClient(f"{root}/fhir", retry=NO_RETRY) as client:
            proxy.enabled = False
            with store.session() as s:
                save_case(s, case)
            assert (await push_pending(store, client, settings)).ok
            gone |= (await server_state(raw, settings.identifier_system)).one("Communication", "contact-1")
            await raw.delete("Communication", gone["id"])
            changed = with_note(case, "contact-1", "called back")
            with store.session() as s:
                save_case(s, changed)
            proxy.enabled = True
            report = await push_pending(store, client, settings)
            proxy.enabled = False
            assert proxy.faults["503"] > 0, proxy.seen
            assert (report.conflicts, [f.permanent for f in report.failures]) == (0, [False]), report
            assert "could not read again Communication contact-1, answered as gone" in report.failures[0].reason
            with store.session(read_only=True) as s:
                assert list_conflicts(s, case_id=case.id) == []
                rows = {r.status for r in list_outbox(s) if r.case_id == case.id}
            assert rows == {OutboxStatus.DONE, OutboxStatus.PENDING}, rows  # the first push's, and this one's
            again = await push_cases(store, client, settings, [changed])  # the read answers: the deletion is found

    assert (again.conflicts, [f.permanent for f in again.failures]) == (1, [True]), again
