"""Working the tracking queue: the patients notifications (and catch-ups) asked about, tracked now.

Each pull round (the worker's, ``fhir-cm pull``) first takes what notifications queued: a patient
(full-resource or empty notifications, catch-ups after a gap or an outage) or a resource whose
patient is still to be read (id-only). The cases of those patients are then tracked with the others
of the round; the queue rows are marked done only once their cases were tracked without failure.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from pydantic import BaseModel, Field

from ..fhir import AsyncFhirClient, FhirError
from ..mapping import parse_reference, patient_of
from ..store import Store, mark_tracked, open_case_patients, pending_tracking
from ._membership import patient_ids

__all__ = ["QueuedCases", "cases_queued", "settle_queue"]


class QueuedCases(BaseModel):
    """The cases the queue asks to track, the queue rows behind each, and the earliest notification."""

    cases: dict[str, list[int]] = Field(default_factory=dict)
    rows: list[int] = Field(default_factory=list, description="Every row taken (done once its cases are tracked).")
    learned_at: dt.datetime | None = None


async def cases_queued(store: Store, client: AsyncFhirClient) -> QueuedCases:
    """The open cases whose patients the queue names (reading an id-only resource to find its patient)."""
    base = client.base_url
    with store.session(read_only=True) as session:
        pending = pending_tracking(session, base)
        by_patient: dict[str, set[str]] = defaultdict(set)
        for case_id, party in open_case_patients(session):
            for pid in patient_ids(session, base, party):
                by_patient[pid].add(case_id)
    out = QueuedCases(rows=[p.id for p in pending])
    for item in pending:
        patient: str | None = item.patient_id
        # A row may hold the address as the server wrote it (versioned, absolute): read as Type/id, and
        # one naming no resource has nothing to track (read as an id, it failed every round after).
        address = parse_reference(item.resource) if patient is None else None
        if address is not None:
            try:
                patient = patient_of(await client.read(*address))
            except (FhirError, ValueError):  # ValueError: an id no request can carry ('..')
                patient = None  # gone or unreadable: nothing to track for it
        for case_id in by_patient.get(patient or "", ()):
            out.cases.setdefault(case_id, []).append(item.id)
        if out.learned_at is None or item.received_at < out.learned_at:
            out.learned_at = item.received_at
    return out


def settle_queue(store: Store, queued: QueuedCases, failed: set[str]) -> None:
    """Mark done the rows whose cases were all tracked (and those that named no open case)."""
    keep = {row for case_id, rows in queued.cases.items() if case_id in failed for row in rows}
    with store.session() as session:
        mark_tracked(session, [r for r in queued.rows if r not in keep])
