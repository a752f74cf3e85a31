"""A push stopped while it claims its next batch (the claim running in the store's thread) gives
those rows back too: the claim goes on after the stop, and its rows, which the push did not know it
held yet, stayed leased to a process that had ended until the lease ran out."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, held_leases, save_case
from fhir_cm.sync import _push_loop, push_pending
from fhir_cm.synthetic import generate_cases

pytestmark = pytest.mark.server


async def test_a_push_stopped_during_a_claim_leaves_no_row_leased(
    store: Store, client: AsyncFhirClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.session() as s:
        for case in generate_cases(12, seed=4417):
            save_case(s, case)
    real_claim = _push_loop.claim_outbox
    in_claim = threading.Event()
    go_on = threading.Event()
    calls = 0

    def claim_held_open(*args: Any, **kwargs: Any) -> Any:
        """The second claim (the next batch's) waits in the store's thread until the push is stopped."""
        nonlocal calls
        calls += 1
        if calls == 2:
            in_claim.set()
            go_on.wait(timeout=30)
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(_push_loop, "claim_outbox", claim_held_open)
    settings = settings.model_copy(update={"push_batch_size": 4})
    pushing = asyncio.ensure_future(push_pending(store, client, settings))
    while not in_claim.is_set() and not pushing.done():
        await asyncio.sleep(0.01)
    assert in_claim.is_set(), "the push ended before its second claim"
    pushing.cancel()
    # One turn of the loop: the stop reaches the push (scheduled first) while its claim is still held
    # open in the thread, which cannot answer before ``go_on``.
    await asyncio.sleep(0)
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await pushing

    with store.session(read_only=True) as s:
        assert held_leases(s) == []
