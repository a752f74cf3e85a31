"""A push told nothing it can use: a batch-response short of answers, a server not listening.

A batch-response with fewer answers than the batch had entries cannot say which answer is whose
(``test_fhir_bundles``: answers out of order): none is taken, nothing is recorded, and the case
waits for the next round — whose entries (every create conditional or under a stable id, every
update ``If-Match``'d) meet what the server did write instead of writing it twice. The person must
be told what went wrong: the case showed 'InvalidResponse; will retry', or 'TransientError' for a
server refusing connections, which says neither what nor where.
"""

from __future__ import annotations

from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import NO_RETRY, AsyncFhirClient
from fhir_cm.store import Store, get_ledger, list_conflicts, list_outbox, save_case
from fhir_cm.sync import PushReport, push_cases, push_pending
from tests.servers import RunningServer
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.limiting_proxy import limiting_proxy
from tests.sync.server_state import CASE_TYPES, server_state
from tests.sync import test_push_batch
from tests.sync.test_push_batch import edited

pytestmark = pytest.mark.server

# The in-memory server (it declares every type), and a case with goals and contacts to edit.
fhir_server, case = test_push_batch.fhir_server, test_push_batch.case


async def edit_pushed_through(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, case: Case, malform: Any
) -> tuple[PushReport, PushReport]:
    """The case pushed, edited (three updates, a batch: no transactions), and pushed with the proxy
    ``malform``-ed; then once more as the server answers: both reports, the edit checked written once."""
    settings = settings.model_copy(update={"max_transaction_entries": 0})
    system = settings.identifier_system
    with limiting_proxy(fhir_server) as (proxy_base, proxy):
        async with AsyncFhirClient(proxy_base) as client:
            assert (await push_cases(store, client, settings, [case])).ok
            before = await server_state(raw, system)
            with store.session() as s:
                save_case(s, edited(case))
            malform(proxy)

            malformed = await push_pending(store, client, settings)

            proxy.short_batches = 0
            again = await push_pending(store, client, settings)

    state = await server_state(raw, system)
    assert state.counts == before.counts  # each resource once: nothing the malformed answers hid written again
    assert state.one("Communication", case.contacts[0].id)["payload"][0]["contentString"] == "Spoke again by phone."
    goals = {state.one("Goal", g.id)["target"][0]["measure"]["text"] for g in case.goals[:2]}
    assert goals == {"target 0 reviewed", "target 1 reviewed"}
    with store.session(read_only=True) as s:
        assert list_conflicts(s, case_id=case.id) == []
        for key in state.resources:
            if key[0] in CASE_TYPES:
                entry = get_ledger(s, proxy_base, *key)
                assert entry is not None and entry.version_id == state.one(*key)["meta"]["versionId"], key
    return malformed, again


async def test_a_batch_response_short_of_answers_is_named_and_the_next_push_writes_nothing_twice(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, case: Case
) -> None:
    def short(proxy: Any) -> None:
        proxy.short_batches = -1

    malformed, again = await edit_pushed_through(store, raw, settings, fhir_server, case, short)

    [failure] = malformed.failures
    assert not failure.permanent
    assert failure.reason.startswith("the server's batch-response was malformed (")
    assert "answers for" in failure.reason and failure.reason.endswith("; will retry"), failure.reason
    assert again.ok, again.failures


async def test_a_batch_answer_without_a_status_is_sent_again_and_written_once(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, case: Case
) -> None:
    """An answer with no ``response.status`` (FHIR requires one; HAPI, Firely and Medplum always give
    it) reads as an entry never sent: sent again, its ``If-Match`` (or conditional create) meets what
    the server did write — merged, not written twice — and the answers beside it are taken as the
    server gave them. Nothing is duplicated nor lost, as with a response short of answers."""

    proxies: list[Any] = []

    def statusless(proxy: Any) -> None:
        proxy.short_batches, proxy.statusless = 1, True
        proxies.append(proxy)

    malformed, again = await edit_pushed_through(store, raw, settings, fhir_server, case, statusless)

    assert proxies[0].short_batches == 0  # the edit's batch was answered so
    assert malformed.ok, malformed.failures  # within the push's rounds
    assert again.cases == 0


async def test_a_server_closing_connections_is_named_with_its_host(
    store: Store, settings: Settings, memory_fhir: RunningServer, case: Case
) -> None:
    async with faulty_proxy(memory_fhir.root_url, rate=1.0, faults=("drop",), spared=("/fhir/metadata",)) as (
        root,
        _,
    ):
        async with AsyncFhirClient(f"{root}/fhir", retry=NO_RETRY) as client:
            # No Provenance: its Device is made before any case, and that failure stops the push.
            report = await push_cases(store, client, settings.model_copy(update={"push_provenance": False}), [case])
    with store.session(read_only=True) as s:
        [row] = list_outbox(s, case_id=case.id)

    [failure] = report.failures
    host = root.removeprefix("http://")
    assert f"{host} closed the connection without a complete answer" in failure.reason, failure.reason
    assert row.last_error == failure.reason and not failure.permanent
    assert case.patient.id not in failure.reason and (case.patient.name or "") not in failure.reason


async def test_single_requests_stopped_by_a_network_failure_name_the_entry_that_met_it(
    store: Store, settings: Settings, memory_fhir: RunningServer, case: Case
) -> None:
    """A new case's entries name each other, so with no transactions they go one by one in reference
    order, stopping at the first failure: the goals before the plan naming them. The case named the
    first entry of the round never sent (the CarePlan), not the Goal the network failed."""
    settings = settings.model_copy(update={"max_transaction_entries": 0, "push_provenance": False})
    async with faulty_proxy(memory_fhir.root_url, rate=1.0, faults=("drop",), only=("/fhir/Goal",)) as (root, _):
        async with AsyncFhirClient(f"{root}/fhir", retry=NO_RETRY) as client:
            report = await push_cases(store, client, settings, [case])

    [failure] = report.failures
    host = root.removeprefix("http://")
    assert failure.reason == f"Goal not written ({host} closed the connection without a complete answer); will retry"
