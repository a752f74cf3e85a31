"""Push to a server taking no transactions, whose batches refuse some entries on their own.

With no transactions (``FHIR_CM_MAX_TRANSACTION_ENTRIES=0``), a round whose entries name no other
entry goes out as a ``batch``: each entry is applied or refused on its own. The proxy in front of
the real server (``limiting_proxy`` with ``refuse_entries``) refuses the case's Goals with a 422, as
a server checking a profile does, and forwards the rest. What the server wrote must be in the
ledger whatever was refused beside it, and every refusal must reach the person, without our data.

The in-memory server (``tests/memory_server.py``) declares every type it takes: sekmet leaves Goal
and CareTeam out of its CapabilityStatement, and the client refuses single requests of those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import (
    LedgerEntry,
    OutboxItem,
    OutboxStatus,
    Store,
    get_ledger,
    list_outbox,
    open_store,
    save_case,
)
from fhir_cm.sync import PushReport, push_cases, push_pending
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer
from tests.sync.limiting_proxy import limiting_proxy
from tests.sync.server_state import CASE_TYPES, ServerState, provenances_for, server_state

pytestmark = pytest.mark.server


@pytest.fixture
def fhir_server(memory_fhir: RunningServer) -> str:
    return memory_fhir.base_url


@pytest.fixture
def case() -> Case:
    """A case with two goals and a contact, whose goals the proxy refuses once they change."""
    return next(c for c in generate_cases(30, seed=5) if len(c.goals) >= 2 and c.contacts)


def edited(case: Case) -> Case:
    """Both goals and the first contact changed: three updates naming no other entry, so a batch."""
    goals = [g.model_copy(update={"target": f"target {n} reviewed"}) for n, g in enumerate(case.goals[:2])]
    contact = case.contacts[0].model_copy(update={"note": "Spoke again by phone."})
    return case.model_copy(update={"goals": goals + case.goals[2:], "contacts": [contact, *case.contacts[1:]]})


def refuse_changed_goals(quoted: list[str]) -> Any:
    """A profile check quoting our data back: the goals' updates (not their first creates) refused."""

    def refuse(entry: dict[str, Any]) -> str | None:
        resource, request = entry.get("resource") or {}, entry.get("request") or {}
        if resource.get("resourceType") != "Goal" or request.get("method") != "PUT" or not request.get("ifMatch"):
            return None
        text = resource["description"]["text"]
        quoted.append(text)
        return f'Goal.description "{text}" does not conform to the profile: {text}'

    return refuse


@dataclass
class Refused:
    """What the push of the edited case left: its report, the server's copies, the ledger, the row."""

    report: PushReport
    state: ServerState
    ledger: dict[tuple[str, str], LedgerEntry | None]
    row: OutboxItem
    quoted: list[str]


async def push_refused(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, system: str, case: Case
) -> Refused:
    """Push the case, then its edit, through a proxy refusing the goals' updates and taking no transactions."""
    settings = settings.model_copy(update={"max_transaction_entries": 0})
    quoted: list[str] = []
    with limiting_proxy(fhir_server, refuse_entries=refuse_changed_goals(quoted)) as (proxy_base, proxy):
        async with AsyncFhirClient(proxy_base) as client:
            first = await push_cases(store, client, settings, [case])
            assert first.ok, first.failures
            with store.session() as s:
                save_case(s, edited(case))

            report = await push_pending(store, client, settings)

    assert proxy.refusals == 2 and quoted
    state = await server_state(raw, system)
    with store.session(read_only=True) as s:
        ledger = {(t, v): get_ledger(s, proxy_base, t, v) for (t, v) in state.resources if t in CASE_TYPES}
        row = list_outbox(s, case_id=case.id)[-1]  # the edit's row (the first push's is done)
    return Refused(report, state, ledger, row, quoted)


async def test_a_batch_entry_refused_leaves_every_entry_written_beside_it_in_the_ledger(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, system: str, case: Case
) -> None:
    pushed = await push_refused(store, raw, settings, fhir_server, system, case)

    state = pushed.state
    assert state.one("Communication", case.contacts[0].id)["payload"][0]["contentString"] == "Spoke again by phone."
    # Every copy the server holds is the one the ledger holds: the contact's update, written after
    # the refused goals in the same batch, included (it was left out of the ledger, and counted nowhere).
    for key, entry in pushed.ledger.items():
        assert entry is not None and entry.version_id == state.one(*key)["meta"]["versionId"], key
    assert (pushed.report.failed, pushed.report.updated) == (1, 1)
    [failure] = pushed.report.failures
    assert failure.permanent and pushed.row.status is OutboxStatus.FAILED


async def test_each_entry_a_batch_refused_is_named_with_the_servers_reason_without_our_data(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, system: str, case: Case
) -> None:
    pushed = await push_refused(store, raw, settings, fhir_server, system, case)

    [failure] = pushed.report.failures
    assert pushed.row.last_error == failure.reason
    for goal in case.goals[:2]:
        assert f"Goal {goal.id}: HTTP 422 processing: Goal.description" in failure.reason, failure.reason
    assert not any(text in failure.reason for text in pushed.quoted), failure.reason
    assert failure.server is not None and failure.server.status == 422


async def test_single_requests_stopped_by_a_refused_entry_name_it_not_an_entry_never_sent(
    sekmet_base: str, tmp_path: Path, system: str
) -> None:
    """Entries naming each other go out as single requests in reference order, stopping at the first
    refused: sekmet leaves CareTeam out of its CapabilityStatement, so the client refuses its update.
    The case named the last entry never sent as failing 'transient', every push, for ever."""
    case = next(c for c in generate_cases(30, seed=5) if c.team and c.contacts)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'singles.db'}",
        fhir_base=sekmet_base,
        identifier_system=system,
        fhir_version="auto",
        max_transaction_entries=0,
    )
    with open_store(settings.database_url) as store:
        async with AsyncFhirClient(sekmet_base) as client:
            report = await push_cases(store, client, settings, [case])

    [failure] = report.failures
    assert failure.reason.startswith("the server refused CareTeam "), failure.reason
    assert "UnsupportedByServer" in failure.reason and "transient" not in failure.reason
    assert failure.permanent
    assert report.created >= 1  # what went before it was written, and is counted


async def test_the_provenance_of_a_batch_names_only_what_the_server_wrote(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, system: str, case: Case
) -> None:
    pushed = await push_refused(store, raw, settings, fhir_server, system, case)

    state = pushed.state
    goals = {f"Goal/{state.one('Goal', g.id)['id']}" for g in case.goals[:2]}
    contact = f"Communication/{state.one('Communication', case.contacts[0].id)['id']}"
    updates = [
        {t["reference"] for t in p["target"]}
        for p in await provenances_for(raw, goals | {contact})
        if p["activity"]["coding"][0]["code"] == "UPDATE"
    ]
    # The batch carried the Provenance beside the entries, each on its own: it was written naming
    # the refused goals' updates as done — an audit trail of changes that never happened.
    assert [targets & (goals | {contact}) for targets in updates] == [{contact}]


async def test_a_batch_refusing_every_entry_names_the_first_three_and_counts_the_others(
    store: Store, settings: Settings, fhir_server: str, case: Case
) -> None:
    assert len(case.goals) >= 5
    settings = settings.model_copy(update={"max_transaction_entries": 0})
    changed = case.model_copy(update={"goals": [g.model_copy(update={"target": "reviewed"}) for g in case.goals]})
    with limiting_proxy(fhir_server, refuse_entries=refuse_changed_goals([])) as (proxy_base, proxy):
        async with AsyncFhirClient(proxy_base) as client:
            assert (await push_cases(store, client, settings, [case])).ok
            with store.session() as s:
                save_case(s, changed)

            report = await push_pending(store, client, settings)

    assert proxy.refusals == len(case.goals)
    [failure] = report.failures
    named = [g.id for g in case.goals if f"Goal {g.id}: HTTP 422" in failure.reason]
    assert len(named) == 3 and failure.reason.endswith(f"; and {len(case.goals) - 3} more refused")
    with store.session(read_only=True) as s:
        assert list_outbox(s, case_id=case.id)[-1].last_error == failure.reason  # kept whole
    assert (report.failed, report.updated) == (1, 0)


async def test_a_provenance_a_batch_refused_beside_the_writes_it_took_is_told(
    store: Store, settings: Settings, fhir_server: str, case: Case
) -> None:
    """In a transaction a refused Provenance fails the case; in a batch the writes stand without it,
    and nothing said so: the audit trail of those changes was missing without a word."""
    settings = settings.model_copy(update={"max_transaction_entries": 0})

    def refuse_provenance(entry: dict[str, Any]) -> str | None:
        resource = entry.get("resource") or {}
        return "Provenance.agent: a Device is not allowed" if resource.get("resourceType") == "Provenance" else None

    with limiting_proxy(fhir_server) as (proxy_base, proxy):
        async with AsyncFhirClient(proxy_base) as client:
            assert (await push_cases(store, client, settings, [case])).ok
            with store.session() as s:
                save_case(s, edited(case))
            proxy.refuse_entries = refuse_provenance

            report = await push_pending(store, client, settings)

    assert report.ok and (report.updated, report.provenances) == (3, 0)
    [warning] = report.warnings
    assert (warning.case_id, warning.resource_type, warning.taken) == (case.id, "Provenance", False)
    assert warning.server.status == 422 and "a Device is not allowed" in warning.server.text
