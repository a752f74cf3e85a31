"""Push to a server that does not check ``If-Match``: a server edit is still neither lost nor overwritten.

The push guards its updates with ``If-Match``, which only a server declaring ``versioning:
versioned-update`` promises to check. The proxy in front of the real server (``limiting_proxy``
with ``versioning``) declares ``versioned`` or ``no-version`` and drops every ``If-Match``, as a
server keeping histories but ignoring preconditions does; no local server behaves so, hence the
proxy. Without a check of its own the push overwrote the other system's edit silently.
"""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case, GoalStatus
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import ConflictStatus, Store, list_conflicts, save_case
from fhir_cm.sync import push_cases, push_pending
from fhir_cm.synthetic import generate_cases
from tests.sync.limiting_proxy import limiting_proxy
from tests.sync.server_state import server_state
from tests.sync.test_push import with_goal

pytestmark = pytest.mark.server


@pytest.fixture
def case() -> Case:
    return next(iter(generate_cases(1, seed=412)))


@pytest.mark.parametrize("versioning", ["versioned", "no-version"])
async def test_a_clash_with_a_server_edit_is_a_conflict_on_a_server_that_ignores_if_match(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, system: str, case: Case, versioning: str
) -> None:
    was = case.goals[0].status
    local, theirs = [s for s in (GoalStatus.ON_HOLD, GoalStatus.CANCELLED, GoalStatus.REJECTED) if s != was][:2]
    with limiting_proxy(fhir_server, max_entries=10_000, versioning=versioning) as (proxy_base, _):
        async with AsyncFhirClient(proxy_base) as client:
            await push_cases(store, client, settings, [case])
            changed, goal_id = with_goal(case, status=local)
            on_server = (await server_state(raw, system)).one("Goal", goal_id)
            await raw.update({**on_server, "lifecycleStatus": theirs.value})  # another system's edit
            with store.session() as s:
                save_case(s, changed)

            report = await push_pending(store, client, settings)

    assert (await server_state(raw, system)).one("Goal", goal_id)["lifecycleStatus"] == theirs.value
    assert (report.failed, report.conflicts) == (1, 1) and report.failures[0].permanent
    with store.session(read_only=True) as s:
        [conflict] = list_conflicts(s, case_id=case.id, status=ConflictStatus.OPEN)
    assert conflict.resource_key == goal_id and "lifecycleStatus" in conflict.fields


async def test_a_server_edit_elsewhere_in_the_resource_survives_on_a_server_that_ignores_if_match(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, system: str, case: Case
) -> None:
    with limiting_proxy(fhir_server, max_entries=10_000, versioning="versioned") as (proxy_base, _):
        async with AsyncFhirClient(proxy_base) as client:
            await push_cases(store, client, settings, [case])
            changed, goal_id = with_goal(case, target="Walks 300 m unaided")
            on_server = (await server_state(raw, system)).one("Goal", goal_id)
            note = [{"text": "Discussed at the ward round."}]
            await raw.update({**on_server, "note": note})  # an element the adapter does not own
            with store.session() as s:
                save_case(s, changed)

            report = await push_pending(store, client, settings)

    goal = (await server_state(raw, system)).one("Goal", goal_id)
    assert goal["target"][0]["measure"]["text"] == "Walks 300 m unaided"
    assert goal["note"] == note
    assert (report.failed, report.conflicts, report.updated) == (0, 0, 1)
