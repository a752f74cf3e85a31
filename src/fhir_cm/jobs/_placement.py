"""Placement after discharge (COW): offer a case to candidate facilities, follow their answers, choose one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..config import Settings
from ..domain import CareSetting
from ..store import Placement, Store, list_placements
from ..sync import PlacementHook, choose_placement, offer_placement, read_placement
from ._clients import push_client, require_fhir_base

__all__ = ["choose_facility", "follow_placement", "offer_to_facilities", "placements_of"]


async def offer_to_facilities(
    store: Store,
    settings: Settings,
    case_id: str,
    setting: CareSetting,
    candidates: Sequence[str],
    *,
    service: str | None = None,
    then: PlacementHook | None = None,
) -> Placement:
    """One ServiceRequest and one Task per candidate facility, on the configured server; ``then`` runs in
    the transaction recording the offer (an audit row)."""
    require_fhir_base(settings)
    async with push_client(settings) as client:
        return await offer_placement(store, client, settings, case_id, setting, candidates, service=service, then=then)


async def follow_placement(store: Store, settings: Settings, placement_id: str) -> Placement:
    """Each candidate's answer, read back from the server now."""
    require_fhir_base(settings)
    async with push_client(settings) as client:
        return await read_placement(store, client, placement_id)


async def choose_facility(
    store: Store,
    settings: Settings,
    placement_id: str,
    organization: str,
    *,
    as_of: dt.date | None = None,
    then: PlacementHook | None = None,
) -> Placement:
    """Settle the offer on the patient's choice (see ``sync.choose_placement``) on ``as_of`` (today when not
    given); ``then`` runs in the transaction that puts the facility on the case (an audit row)."""
    require_fhir_base(settings)
    async with push_client(settings) as client:
        return await choose_placement(store, client, settings, placement_id, organization, as_of=as_of, then=then)


def placements_of(store: Store, case_id: str | None = None) -> list[Placement]:
    """The offers recorded (of one case), as last read back."""
    with store.session(read_only=True) as session:
        return list_placements(session, case_id)
