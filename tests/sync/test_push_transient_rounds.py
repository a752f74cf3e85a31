"""A case failing for now gets one more round, not four; none when the server asked to wait.

The client already sends a request again on a transient failure (``RetryPolicy``: attempts, back-off,
a server's ``Retry-After``). A case whose round still failed was sent again by every round left
(``MAX_ROUNDS``: five in all), at once: each request of a struggling server's answer came five times
(twenty with the client's own retries), and a ``Retry-After`` longer than the client waits was
answered by four more rounds straight away. One transient retry per case is what the rounds allow.
"""

from __future__ import annotations

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import NO_RETRY, AsyncFhirClient, RetryPolicy
from fhir_cm.store import Store
from fhir_cm.sync import push_cases
from tests.servers import RunningServer
from tests.sync import test_push_batch
from tests.sync.faulty_proxy import faulty_proxy

pytestmark = pytest.mark.server


# The in-memory server (it declares every type), and a case with goals.
fhir_server, case = test_push_batch.fhir_server, test_push_batch.case


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Single requests (no transactions), so the proxy can fail the Goals' creates alone."""
    return settings.model_copy(update={"max_transaction_entries": 0, "push_provenance": False})


async def goal_posts(
    store: Store, settings: Settings, memory_fhir: RunningServer, case: Case, retry: RetryPolicy, retry_after: int
) -> tuple[int, str, float | None]:
    """Push the case with every create of a Goal answered 503: (Goal creates sent, reason, retry_after)."""
    async with faulty_proxy(
        memory_fhir.root_url, rate=1.0, faults=("503",), retry_after=retry_after, only=("/fhir/Goal",)
    ) as (root, proxy):
        async with AsyncFhirClient(f"{root}/fhir", retry=retry) as client:
            report = await push_cases(store, client, settings, [case])
    [failure] = report.failures
    assert not failure.permanent
    return sum(1 for seen in proxy.seen if seen.startswith("POST /fhir/Goal")), failure.reason, failure.retry_after


async def test_a_case_failing_for_now_is_sent_once_more_in_the_same_push(
    store: Store, settings: Settings, memory_fhir: RunningServer, case: Case
) -> None:
    sent, reason, _ = await goal_posts(store, settings, memory_fhir, case, NO_RETRY, retry_after=0)

    assert sent == 2, sent  # the round, and one more
    assert reason.startswith("Goal not written (TransientError 503"), reason


async def test_a_case_the_server_asked_to_wait_for_is_not_sent_again_in_the_same_push(
    store: Store, settings: Settings, memory_fhir: RunningServer, case: Case
) -> None:
    quick = RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_max=0.0, max_wait=1.0)

    sent, _, retry_after = await goal_posts(store, settings, memory_fhir, case, quick, retry_after=120)

    assert sent == 1, sent  # Retry-After 120 is longer than the client waits: nothing more before then
    assert retry_after is not None and 119 < retry_after <= 120
