"""A queued case this version's model cannot read (stored before a rule of it) does not stop the push:
the others go out, it stays queued with the reason naming `fhir-cm check`, and `push --all`-style
queueing takes it in as well."""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import OutboxStatus, Store, list_outbox, save_case
from fhir_cm.sync import push_pending
from fhir_cm.sync._push_loop import enqueue_unpushed
from fhir_cm.synthetic import generate_cases
from tests.sync.server_state import server_state
from tests.unreadable import SECRET_NOTE, make_unreadable

pytestmark = pytest.mark.server


def _outbox(store: Store) -> dict[str, tuple[OutboxStatus, str | None]]:
    with store.session(read_only=True) as s:
        return {i.case_id: (i.status, i.last_error) for i in list_outbox(s)}


async def test_the_others_are_pushed_and_it_stays_queued_with_the_reason(
    store: Store, client: AsyncFhirClient, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    cases: list[Case] = sorted(generate_cases(3, seed=5), key=lambda c: c.id)
    with store.session() as s:
        for case in cases:
            save_case(s, case)
    bad = cases[1].id
    make_unreadable(store, bad)

    report = await push_pending(store, client, settings)

    assert (report.cases, report.failed) == (3, 1)
    [failure] = report.failures
    assert (failure.case_id, failure.permanent) == (bad, False)
    assert "fhir-cm check" in failure.reason and SECRET_NOTE not in failure.reason
    state = await server_state(raw, system)
    episodes = {r[0]["identifier"][0]["value"] for (t, _), r in state.resources.items() if t == "EpisodeOfCare"}
    assert episodes == {cases[0].id, cases[2].id}
    outbox = _outbox(store)
    assert {c: s for c, (s, _) in outbox.items()} == {
        cases[0].id: OutboxStatus.DONE,
        bad: OutboxStatus.PENDING,
        cases[2].id: OutboxStatus.DONE,
    }
    assert "fhir-cm check" in (outbox[bad][1] or "")


async def test_queueing_every_unpushed_case_takes_it_in(store: Store, settings: Settings) -> None:
    cases = list(generate_cases(2, seed=6))
    with store.session() as s:
        for case in cases:
            save_case(s, case, enqueue=False)
    make_unreadable(store, cases[0].id)

    assert enqueue_unpushed(store, settings.fhir_base or "") == 2
    assert set(_outbox(store)) == {c.id for c in cases}
