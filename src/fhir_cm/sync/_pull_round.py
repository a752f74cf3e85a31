"""One pull round as the CLI and the worker run it: pull, then track the transitions of the cases it touched."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..store import Store
from ._pull import PullReport, pull
from ._transitions import TransitionsReport, track_transitions

__all__ = ["PullRoundReport", "pull_and_track"]


class PullRoundReport(BaseModel):
    """What the pull brought in and what the tracker then recorded."""

    pull: PullReport
    transitions: TransitionsReport


async def pull_and_track(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    *,
    since: dt.datetime | str | None = None,
    patient: str | None = None,
) -> PullRoundReport:
    """Pull (see :func:`pull`), then track transitions for every case the pull created or updated.

    Matches the worker's step signature, so ``steps=[pull_and_track]`` makes a worker pull too.
    """
    pulled = await pull(store, client, settings, since=since, patient=patient)
    tracked = await track_transitions(store, client, settings, case_ids=pulled.cases) if pulled.cases else TransitionsReport()
    return PullRoundReport(pull=pulled, transitions=tracked)
