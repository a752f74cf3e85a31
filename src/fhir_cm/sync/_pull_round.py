"""One pull round as the CLI and the worker run it: pull, then track the transitions of the cases it touched."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..store import Store
from ._pull import PullReport, pull
from ._discharges import FollowUpPush, push_follow_ups
from ._transitions import TransitionsReport, track_transitions
from ._watch import WatchReport, changed_encounter_patients, settle_watch

__all__ = ["PullRoundReport", "pull_and_track"]


class PullRoundReport(BaseModel):
    """What the pull brought in, what the Encounter watch saw, and what the tracker then recorded."""

    pull: PullReport
    watch: WatchReport | None = None
    transitions: TransitionsReport
    follow_ups: FollowUpPush | None = None


async def pull_and_track(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    since: dt.datetime | str | None = None,
    patient: str | None = None,
    push_with: AsyncFhirClient | None = None,
) -> PullRoundReport:
    """Pull (see :func:`pull`), watch the Encounters of open cases' patients (``_watch``: whoever wrote
    them), then track transitions for every case the pull or the watch touched, and the cases first seen
    open (their whole Encounter history, once). With ``patient`` the pull reads that patient's
    everything and the watch is left out (it is the narrow, by-hand path).

    With ``push_with`` (a client for pushing), the follow-ups the tracker asked for after hospital
    discharges are pushed at once (``_discharges``), their latency recorded.

    Matches the worker's step signature, so ``steps=[pull_and_track]`` makes a worker pull too.
    """
    learned_at = dt.datetime.now(dt.UTC)
    pulled = await pull(store, client, settings, since=since, patient=patient)
    watch = None if patient is not None else await changed_encounter_patients(store, client)
    wanted = set(pulled.cases) | (set(watch.touched) | set(watch.seeded) if watch is not None else set())
    tracked = await track_transitions(store, client, settings, case_ids=wanted) if wanted else TransitionsReport()
    if watch is not None:
        settle_watch(store, client.base_url, watch, tracked.failed)
    acted = None
    if push_with is not None and tracked.follow_ups:
        acted = await push_follow_ups(store, push_with, settings, tracked.follow_ups, learned_at=learned_at)
    return PullRoundReport(pull=pulled, watch=watch, transitions=tracked, follow_ups=acted)
