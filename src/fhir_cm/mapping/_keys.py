"""The business identifier of every resource a case becomes.

An entity's own id is the identifier value of the resource it maps to; the resources derived from
the case or a referral append a suffix, so they have ids of their own and can be found on any
server by ``identifier=<system>|<value>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain import Case, Referral
from ._base import ResourceKey

__all__ = ["careplan_key", "careteam_key", "episode_key", "resource_key", "task_key"]


def episode_key(case: Case) -> ResourceKey:
    return ResourceKey("EpisodeOfCare", case.id)


def careplan_key(case: Case) -> ResourceKey:
    return ResourceKey("CarePlan", f"{case.id}-careplan")


def careteam_key(case: Case) -> ResourceKey:
    return ResourceKey("CareTeam", f"{case.id}-careteam")


def task_key(referral: Referral) -> ResourceKey:
    return ResourceKey("Task", f"{referral.id}-task")


def resource_key(resource: Mapping[str, Any], identifier_system: str) -> ResourceKey | None:
    """The key of a resource: its business identifier in our system, else its logical id.

    A resource fhir-cm did not create (no identifier in ``identifier_system``) is known by its
    server id, which is what the domain then uses as the entity's id.
    """
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return None
    for ident in resource.get("identifier") or ():
        if isinstance(ident, Mapping) and ident.get("system") == identifier_system and ident.get("value"):
            return ResourceKey(rtype, str(ident["value"]))
    rid = resource.get("id")
    return ResourceKey(rtype, rid) if isinstance(rid, str) and rid else None
