"""``push_cases`` saves its cases a claim's worth at a time: the first go out while the rest are saved,
and whatever happens to the push, every case is saved and queued when it returns or raises."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import NO_RETRY, AsyncFhirClient, TransientError
from fhir_cm.store import OutboxStatus, Store, list_cases, list_outbox, open_store
from fhir_cm.sync import push_cases
from fhir_cm.synthetic import generate_cases


def stored(store: Store) -> int:
    with store.session(read_only=True) as s:
        return len(list_cases(s))


@pytest.mark.server
async def test_the_first_case_goes_out_before_the_last_is_saved(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    """One case per claim, one at a time: the fourth case is saved while the third claimed batch
    goes out, which is claimed once the second case holds the only slot, after the first is done."""
    cases = list(generate_cases(4, seed=47))
    seen_at_first_transaction: list[int] = []

    async def on_request(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.rstrip("/").endswith("fhir") and not seen_at_first_transaction:
            body = request.content
            if b'"transaction"' in body:
                seen_at_first_transaction.append(stored(store))

    http = httpx.AsyncClient(event_hooks={"request": [on_request]})
    async with http, AsyncFhirClient(fhir_server, http=http) as client:
        report = await push_cases(
            store, client, settings.model_copy(update={"push_concurrency": 1, "push_batch_size": 1}), cases
        )

    assert (report.cases, report.failed) == (4, 0)
    assert seen_at_first_transaction and seen_at_first_transaction[0] < 4
    assert stored(store) == 4
    with store.session(read_only=True) as s:
        assert {row.status for row in list_outbox(s)} == {OutboxStatus.DONE}


async def test_a_push_that_fails_still_saves_and_queues_every_case(tmp_path: Path) -> None:
    """The server is gone when the push starts: nothing lands, and nothing is lost."""
    cases = list(generate_cases(5, seed=48))
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        fhir_base="http://127.0.0.1:9/fhir",
        identifier_system="urn:fhir-cm:test:gone",
        push_batch_size=2,
    )

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(
            settings.fhir_base, transport=httpx.MockTransport(refuse), fhir_version="4.0.1", retry=NO_RETRY
        ) as client:
            with pytest.raises(TransientError):
                await push_cases(store, client, settings, cases)
        assert stored(store) == 5
        with store.session(read_only=True) as s:
            rows = list_outbox(s)
    assert sorted(row.case_id for row in rows) == sorted(case.id for case in cases)
    assert OutboxStatus.DONE not in {row.status for row in rows}
