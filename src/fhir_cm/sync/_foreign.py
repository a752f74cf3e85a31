"""Other systems' resources in a case: written back only for what the case manager changed on them.

A case holds resources the adapter did not create — a hospital's Encounters read as stays by the
transitions tracker, a clinic's Conditions pulled for the patient. They belong to the system that
wrote them. The rule the pusher follows:

* a resource with no business identifier in the adapter's system is **foreign**;
* it is written only when the case changed something the adapter *reads* from it (a stay's end, a
  need's finding) — i.e. when the domain values read from the server copy differ from those of
  the update the mapping built;
* and then only the top-level elements that carry that change are written; every other element —
  in particular the links the mapping would add between the case's resources (an Encounter's
  ``episodeOfCare``, a Communication's ``partOf``) — stays as the owner wrote it.

Anything else the mapping would change on such a resource (links, normalised codes, the case's
patient or manager) is left out: the adapter never writes to another system's record on its own
account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..mapping import FhirVersion, MappingError, References, read_resource

__all__ = ["foreign_update", "is_foreign"]

_SERVER_OWNED = frozenset({"resourceType", "id", "meta"})


def is_foreign(resource: Mapping[str, Any], identifier_system: str) -> bool:
    """Whether ``resource`` carries no business identifier of the adapter's: another system owns it."""
    return not any(
        isinstance(i, Mapping) and i.get("system") == identifier_system for i in resource.get("identifier") or ()
    )


def foreign_update(
    base: Mapping[str, Any], update: dict[str, Any], version: FhirVersion, identifier_system: str, refs: References
) -> dict[str, Any] | None:
    """What to write to a foreign resource: None when the case changed nothing the adapter reads from
    it, else ``update`` with every element that does not carry the change put back as ``base`` has it."""

    def read(resource: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            values = read_resource(resource, version, identifier_system, refs)
        except MappingError:
            return None
        values.pop("id", None)
        return values

    wanted = read(update)
    if wanted is None:
        return update  # not readable as case data: nothing to compare, the mapping's update stands
    if read(base) == wanted:
        return None
    out = dict(update)
    for name in sorted((base.keys() | update.keys()) - _SERVER_OWNED):
        if base.get(name) == out.get(name):
            continue
        trial = dict(out)
        if name in base:
            trial[name] = base[name]
        else:
            trial.pop(name, None)
        if read(trial) == wanted:  # this element carries none of the case manager's change
            out = trial
    return out
