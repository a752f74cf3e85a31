"""One pull round as the CLI and the worker run it: pull, then track the transitions of the cases it touched."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from ..config import Settings
from ..fhir import AsyncFhirClient, FhirError
from ..store import Store, get_case_record
from ._pull import PullReport, pull
from ._pull_patient import pull_patient
from ._discharges import FollowUpPush, push_follow_ups
from ._tracking_queue import cases_queued, settle_queue
from ._transfer_summary import WrittenSummary, write_transfer_summary
from ._transition_plan import TransitionPlan, transition_plan
from ._transitions import TransitionsReport, track_transitions
from ._watch import WatchReport, changed_encounter_patients, merges_first, settle_watch

__all__ = ["PullRoundReport", "pull_and_track", "track_notified"]


async def track_notified(
    store: Store, client: AsyncFhirClient, settings: Settings, *, push_with: AsyncFhirClient | None = None
) -> PullRoundReport:
    """Track only the cases that subscription notifications queued — no pull, no watch: the worker does
    this first in every round, so a notification alone records a move (and pushes a discharge's
    follow-up, its latency counted from the notification)."""
    queued = await cases_queued(store, client)
    tracked = (
        await track_transitions(store, client, settings, case_ids=set(queued.cases))
        if queued.cases
        else TransitionsReport()
    )
    settle_queue(store, queued, set(tracked.failed))
    report = PullRoundReport(pull=PullReport(server=client.base_url), transitions=tracked)
    await _act(store, settings, report, push_with, queued.learned_at or dt.datetime.now(dt.UTC))
    return report


async def _act(
    store: Store,
    settings: Settings,
    report: PullRoundReport,
    push_with: AsyncFhirClient | None,
    learned_at: dt.datetime,
) -> None:
    """Push the follow-ups the round asked for at once, and write the transfer summaries it calls for."""
    tracked = report.transitions
    if push_with is None:
        return
    if tracked.follow_ups:
        report.follow_ups = await push_follow_ups(store, push_with, settings, tracked.follow_ups, learned_at=learned_at)
    for case_id, numbers in tracked.handoffs.items():
        for number in numbers:
            try:
                report.documents.append(await write_transfer_summary(store, push_with, settings, case_id, number))
            except FhirError as exc:
                report.document_failures[f"{case_id} move {number}"] = str(exc).splitlines()[0][:300]


class PullRoundReport(BaseModel):
    """What the pull brought in, what the Encounter watch saw, and what the tracker then recorded."""

    pull: PullReport
    watch: WatchReport | None = None
    transitions: TransitionsReport
    follow_ups: FollowUpPush | None = None
    documents: list[WrittenSummary] = Field(default_factory=list, description="Transfer summaries written.")
    transition_plans: list[TransitionPlan] = Field(
        default_factory=list,
        description="For each new move out of a hospital, SNF or rehabilitation stay of an open case.",
    )
    document_failures: dict[str, str] = Field(
        default_factory=dict, description="'<case id> move <n>' → why the server did not take its transfer summary."
    )


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
    everything — and the record's the hospital merged it into (``_pull_patient``) — and the watch is
    left out (it is the narrow, by-hand path).

    The cases of the patients that subscription notifications queued (``_tracking_queue``) are tracked
    in the same round; a follow-up's latency then counts from the earliest notification.

    With ``push_with`` (a client for pushing), the follow-ups the tracker asked for after hospital
    discharges are pushed at once (``_discharges``), their latency recorded, and each new move out of
    a hospital, SNF or rehabilitation stay gets its transfer summary written to the server with a
    DocumentReference (``_transfer_summary``); a server that refuses them is named in the report, and
    the round goes on.

    Matches the worker's step signature, so ``steps=[pull_and_track]`` makes a worker pull too.
    """
    learned_at = dt.datetime.now(dt.UTC)
    queued = await cases_queued(store, client) if patient is None else None
    if queued is not None and queued.learned_at is not None:
        learned_at = min(learned_at, queued.learned_at)  # a notification told of it first
    # The merged records first: before the pull reads what a merge made name the survivor.
    merges = await merges_first(store, client) if patient is None else None
    if patient is None:
        pulled = await pull(store, client, settings, since=since)
    else:
        pulled = await pull_patient(store, client, settings, patient, since=since)
    watch = None if merges is None else await changed_encounter_patients(store, client, merges=merges)
    wanted = set(pulled.cases) | (set(watch.touched) | set(watch.seeded) if watch is not None else set())
    wanted |= set(queued.cases) if queued is not None else set()
    read = watch.patients_read() if watch is not None else None  # one answer per record a round
    tracked = (
        await track_transitions(store, client, settings, case_ids=wanted, patients_read=read)
        if wanted
        else TransitionsReport()
    )
    if watch is not None:
        settle_watch(store, client.base_url, watch, tracked.failed, seeded_from=tracked.read_from)
    if queued is not None:
        settle_queue(store, queued, set(tracked.failed))
    report = PullRoundReport(pull=pulled, watch=watch, transitions=tracked)
    report.transition_plans = _plans(store, tracked.handoffs)
    await _act(store, settings, report, push_with, learned_at)
    return report


def _plans(store: Store, handoffs: dict[str, list[int]]) -> list[TransitionPlan]:
    """The discharge rule for each move the tracker just recorded (``_transition_plan``)."""
    plans: list[TransitionPlan] = []
    today = dt.date.today()
    with store.session(read_only=True) as s:
        for case_id, numbers in handoffs.items():
            record = get_case_record(s, case_id)
            if record is None:
                continue
            for number in numbers:
                plan = transition_plan(record.case, today, move=number, written=record.dates_as_written)
                if plan is not None:
                    plans.append(plan)
    return plans
