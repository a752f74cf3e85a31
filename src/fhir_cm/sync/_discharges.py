"""Act on a discharge at once: the follow-up the tracker asked for goes to the server in the same round.

A hospital discharge the tracker records makes the case ask for a follow-up (a ServiceRequest and a
Task due within 7 days). Left to the next scheduled push it would wait a whole worker interval or,
from ``fhir-cm pull``, until someone pushes; a case manager wants the receiving team to see it now.
So the pull round pushes those cases right away, and records, per follow-up, the time from when
fhir-cm learned of the discharge to when the server held the follow-up (``/metrics``:
``fhir_cm_discharge_follow_up_seconds``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..store import Store, record_follow_ups_on_server
from ._standing import push_asked

__all__ = ["FollowUpPush", "push_follow_ups"]


class FollowUpPush(BaseModel):
    """The follow-ups pushed at once: which cases, which reached the server, and how long each took."""

    cases: list[str] = Field(default_factory=list)
    on_server: list[str] = Field(default_factory=list, description="Cases whose follow-ups the server now holds.")
    not_yet: dict[str, str] = Field(
        default_factory=dict, description="Case id → why it is not pushed yet (the worker retries)."
    )
    seconds: list[float] = Field(
        default_factory=list, description="Learned of the discharge → follow-up on the server."
    )


async def push_follow_ups(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    follow_ups: Mapping[str, Sequence[str]],
    *,
    learned_at: dt.datetime,
) -> FollowUpPush:
    """Push the cases that have new follow-ups (``case id → referral ids``) now, without waiting for
    other workers' leases (what is held is pushed by its holder), and record each follow-up's latency
    from ``learned_at`` (when the pull round read the discharge, or a notification told of it)."""
    cases = sorted(follow_ups)
    if not cases:
        return FollowUpPush()
    _, standing = await push_asked(store, client, settings, cases, wait=False)
    missing = {n.case_id: n.reason for n in standing.not_pushed}
    pushed = [c for c in cases if c not in missing]
    on_server_at = dt.datetime.now(dt.UTC)
    with store.session() as session:
        record_follow_ups_on_server(
            session, [(c, r) for c in pushed for r in follow_ups[c]], learned_at=learned_at, on_server_at=on_server_at
        )
    seconds = (on_server_at - learned_at).total_seconds()
    return FollowUpPush(
        cases=cases, on_server=pushed, not_yet=missing, seconds=[seconds for c in pushed for _ in follow_ups[c]]
    )
