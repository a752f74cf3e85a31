"""The last case document imported for each case: what an import of the next one merges against.

A case document is a case whole, as the domain's JSON (what ``fhir-cm generate`` writes). An import
applies what a document says differently from the one imported before it for the same case, and keeps
every change made since in the store (the API, a pull, other files): for that it needs the document
imported before, kept here, one per case, replaced by each import of a document for that case.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ForeignKey, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from fhir_cm.domain import Case

from ._dialect import insert
from ._tables import Base
from ._types import Json, UTCDateTime, utcnow

__all__ = ["get_case_document", "put_case_document"]

log = logging.getLogger(__name__)


class CaseDocumentRow(Base):
    """The case document last imported for a case, as the domain model's JSON."""

    __tablename__ = "case_documents"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    imported_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


def get_case_document(session: Session, case_id: str) -> Case | None:
    """The case document last imported for ``case_id``, or None if none was — or if the one kept was
    stored before a rule of the case model and this version cannot read it (logged by case id): it is
    only the base of the next import's merge, which then goes on as for a case imported before
    documents were kept, and replaces it."""
    data = session.execute(select(CaseDocumentRow.data).where(CaseDocumentRow.case_id == case_id)).scalar_one_or_none()
    if data is None:
        return None
    try:
        return Case.model_validate(data)
    except ValidationError:
        log.warning("the case document of %s kept from the last import cannot be read by this version", case_id)
        return None


def put_case_document(session: Session, document: Case, *, now: dt.datetime | None = None) -> None:
    """Keep ``document`` as the one last imported for its case (stored already: the row refers to it)."""
    values = {"case_id": document.id, "data": document.model_dump(mode="json"), "imported_at": now or utcnow()}
    stmt = insert(session, CaseDocumentRow).values(**values)
    session.execute(stmt.on_conflict_do_update(index_elements=["case_id"], set_=values))
