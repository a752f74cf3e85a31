"""A stored case this version's model cannot read, made the way it happens: a row written before a
rule of the case model (here: '..' refused as an entity id), put straight into the store's table."""

from __future__ import annotations

from sqlalchemy import select, update

from fhir_cm.store import CaseCache, Store
from fhir_cm.store._tables import CaseRow

__all__ = ["SECRET_NOTE", "make_unreadable"]

#: What the unreadable case holds that no answer, log line or error may repeat.
SECRET_NOTE = "confidential-note-7"


def make_unreadable(store: Store, case_id: str) -> None:
    """Give the stored case ``case_id`` a contact whose id the model now refuses (its revision kept,
    as an upgrade finds it: nothing of it decoded yet)."""
    with store.session() as s:
        data = s.execute(select(CaseRow.data).where(CaseRow.case_id == case_id)).scalar_one()
        contact = {"id": "..", "date": "2025-02-01", "mode": "face-to-face", "note": SECRET_NOTE}
        data = {**data, "contacts": [*data.get("contacts", []), contact]}
        s.execute(update(CaseRow).where(CaseRow.case_id == case_id).values(data=data))
    store.cases = CaseCache(store.cases.size)
