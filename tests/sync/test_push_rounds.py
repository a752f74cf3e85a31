"""A case's push ends after one round when the server keeps what it was sent; a server that changes
what it was sent gets a second round, which puts the case's values back."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store
from fhir_cm.sync import push_cases
from fhir_cm.sync._push_writes import same_as_sent
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer
from tests.sync.server_state import expected, server_state

URN = "urn:uuid:0b3f6a52-8d1e-5c4b-9f3a-2e7d1c0a9b84"


def test_same_as_sent_reads_the_bundles_urns_as_the_ids_the_server_gave() -> None:
    sent = {"resourceType": "Goal", "addresses": [{"reference": URN}], "priority": {"text": "high"}, "x": True}
    copy = {**sent, "addresses": [{"reference": "Condition/7"}], "id": "9", "meta": {"versionId": "1"}}
    assert same_as_sent(sent, copy, {URN: "Condition/7"})
    assert not same_as_sent(sent, copy, {URN: "Condition/8"})
    assert not same_as_sent(sent, copy, {})
    assert not same_as_sent(sent, {**copy, "priority": {"text": "low"}}, {URN: "Condition/7"})
    assert not same_as_sent(sent, {**copy, "note": [{"text": "added"}]}, {URN: "Condition/7"})
    assert not same_as_sent(sent, {k: v for k, v in copy.items() if k != "priority"}, {URN: "Condition/7"})
    assert not same_as_sent(sent, {**copy, "x": 1}, {URN: "Condition/7"})  # true is not 1
    assert not same_as_sent({**sent, "inner": {"id": "a"}}, {**copy, "inner": {"id": "b"}}, {URN: "Condition/7"})


@pytest.fixture
def fhir_server(memory_fhir: RunningServer) -> str:
    return memory_fhir.base_url


def count_transactions(client: AsyncFhirClient, change: Any = None) -> list[int]:
    """Count the client's transactions; ``change`` may alter each bundle's entries before it goes out."""
    sent: list[int] = []
    original = client.transaction

    async def transaction(entries: Any, **kwargs: Any) -> Any:
        sent.append(len(entries))
        if change is not None:
            change(entries)
        return await original(entries, **kwargs)

    client.transaction = transaction  # type: ignore[method-assign]
    return sent


async def test_a_new_case_the_server_keeps_as_sent_takes_one_transaction(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    cases = list(generate_cases(3, seed=61))
    sent = count_transactions(client)

    report = await push_cases(store, client, settings, cases)

    assert len(sent) == 3  # no second round to confirm what the first left
    assert (report.failed, report.updated) == (0, 0)
    assert (await server_state(raw, system)).counts == expected(cases, system)
    again = await push_cases(store, client, settings, cases)
    assert (again.created, again.updated, len(sent)) == (0, 0, 3)  # and indeed nothing was left


async def test_a_server_that_drops_what_it_was_sent_gets_a_second_round_putting_it_back(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    cases = list(generate_cases(2, seed=62))
    dropped: list[str] = []

    def drop_the_episode_period(entries: Any) -> None:  # as a server that loses an element would
        for i, entry in enumerate(entries):
            resource = entry.resource or {}
            if resource.get("resourceType") == "EpisodeOfCare" and entry.method == "POST" and "period" in resource:
                entries[i] = dataclasses.replace(entry, resource={k: v for k, v in resource.items() if k != "period"})
                dropped.append(entry.full_url)

    sent = count_transactions(client, drop_the_episode_period)

    report = await push_cases(store, client, settings, cases)

    assert len(dropped) == 2 and len(sent) == 4  # a second round for each case
    assert report.failed == 0
    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
    for case in cases:
        assert "period" in state.one("EpisodeOfCare", case.id)
