"""``pull --patient ID`` when the hospital merged that record into another: the survivor is pulled too.

The id an integration engineer pulls by is most often the one the case was enrolled with. Once the
hospital merged that record into a survivor (``replaced-by``, or a survivor that ``replaces`` it
where the merge deleted it: ``_patient_links``), what it records from then on names the survivor,
and a merge that moves references (HAPI's ``$merge``) leaves nothing under the old id at all. So the
pull follows the record's links first and pulls everything of every record reached, one after the
other, saying which record it was merged into. The survivor is recorded as the record the server
knows the case's patient by (``record_survivor``, as the tracker does) before the pulls, so what
names it is placed in the case. An id the hospital never merged is pulled as ever: one read more.
"""

from __future__ import annotations

import datetime as dt
import logging

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..store import Store, case_revisions, ledger_by_server_id
from ._patient_links import PatientChain, follow_replaced_by, record_survivor
from ._pull import pull
from ._report import PullReport

__all__ = ["pull_patient"]

log = logging.getLogger("fhir_cm.sync")


async def pull_patient(
    store: Store,
    client: AsyncFhirClient,
    settings: Settings,
    patient: str,
    *,
    since: dt.datetime | str | None = None,
) -> PullReport:
    """``pull(patient=…)`` for ``patient`` and every record its merges lead to (see the module); the
    report's ``merged_into`` names the survivor."""
    chain = await follow_replaced_by(client, patient)
    if chain.survivor is not None:
        _record(store, client.base_url, patient, chain)
    reports = [await pull(store, client, settings, since=since, patient=pid) for pid in chain.ids]
    report = _combined(reports)
    report.merged_into = chain.survivor
    return report


def _record(store: Store, base: str, patient: str, chain: PatientChain) -> None:
    """Record the survivor for the party known by ``patient`` here, when a case has that party."""
    with store.session() as session:
        known = ledger_by_server_id(session, base, "Patient", patient)
        party = known.key if known is not None else patient
        if case_revisions(session, patient=party) and record_survivor(session, base, party, chain):
            log.info("a pulled patient's record was merged into another; that one is read from now on")


def _combined(reports: list[PullReport]) -> PullReport:
    """One report for the pulls of each record: counts added up, cases taken in by any."""
    first, *rest = reports
    out = first.model_copy(deep=True)
    for r in rest:
        for name in ("fetched", "new_cases", "unchanged", "quarantined", "still_quarantined", "conflicts"):
            setattr(out, name, getattr(out, name) + getattr(r, name))
        out.unplaced += r.unplaced
        out.ignored += r.ignored
        out.skipped_types |= r.skipped_types
        out.cases = sorted(set(out.cases) | set(r.cases))
    out.updated_cases = len(out.cases) - out.new_cases
    return out
