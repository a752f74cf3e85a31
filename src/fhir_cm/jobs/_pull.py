"""Pull: what changed on the server into the cases, then the transitions of the cases it touched."""

from __future__ import annotations

import datetime as dt

from ..config import Settings
from ..store import Store
from ..sync import PullRoundReport, pull_and_track
from ._clients import pull_client, push_client

__all__ = ["run_pull"]


async def run_pull(
    store: Store,
    settings: Settings,
    *,
    since: dt.datetime | str | None = None,
    patient: str | None = None,
) -> PullRoundReport:
    """Pull changes since the watermarks (or ``since``; one ``patient``'s only), then track transitions.

    Reads with the pull client (:func:`pull_client`): types the CapabilityStatement leaves out are
    still asked for. The follow-ups of hospital discharges the round records are pushed at once, with
    the push client. Raises ``NoFhirServer`` without a server.
    """
    async with pull_client(settings) as client, push_client(settings) as pusher:
        return await pull_and_track(store, client, settings, since=since, patient=patient, push_with=pusher)
