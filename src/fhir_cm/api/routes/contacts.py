"""Monitoring contacts: the touch-points whose frequency the caseload view measures."""

from __future__ import annotations

from fastapi import Response, status

from fhir_cm.domain import Contact

from .._casework import add_entity, listed, respond
from .._deps import CaseWork
from .._routing import api_router
from .cases import CaseId

__all__ = ["router"]

router = api_router(prefix="/cases/{case_id}/contacts", tags=["contacts"])


@router.get("", response_model=list[Contact], summary="List a case's contacts")
def list_contacts(case_id: CaseId, work: CaseWork, response: Response) -> list[Contact]:
    """Every monitoring contact of the case, oldest first."""
    contacts: list[Contact] = listed(work, case_id, "contacts", response)
    return sorted(contacts, key=lambda c: (c.date, c.id))


@router.post("", response_model=Contact, status_code=status.HTTP_201_CREATED, summary="Record a contact")
def add_contact(case_id: CaseId, body: Contact, work: CaseWork, response: Response) -> Contact:
    """A contact on a day, face to face, by phone, video or message, with an optional note."""
    return respond(add_entity(work, case_id, "contacts", body, "contact"), response)
