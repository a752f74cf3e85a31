"""Who the caller is: the key's name, role and scope, so a client (the console) can shape its views."""

from __future__ import annotations

from pydantic import BaseModel

from fhir_cm.domain import ProgrammeType
from fhir_cm.store import ApiRole

from .._deps import CurrentPrincipal
from .._routing import api_router

__all__ = ["Me", "router"]

router = api_router(prefix="/me", tags=["access"])


class Me(BaseModel):
    """The calling key: its id (never the secret), name, role, and what the role is scoped to."""

    key_id: str
    name: str
    role: ApiRole
    practitioner_id: str | None
    programme: ProgrammeType | None


@router.get("", response_model=Me, summary="The calling key's role and scope")
def me(principal: CurrentPrincipal) -> Me:
    """Any valid key may ask who it is: a client checks a key once and shows only what its role may see."""
    return Me(
        key_id=principal.id,
        name=principal.name,
        role=principal.role,
        practitioner_id=principal.practitioner_id,
        programme=principal.programme,
    )
