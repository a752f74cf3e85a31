"""The partial dates a case's resources hold: the dates as their sender wrote them, a year or a month.

The domain holds days, so a goal due "2024-06" is due by 2024-06-30 (see :func:`read_day`). A
person reading that day would take it for a deadline someone set; the hospital only said June.
:func:`dates_as_written` says, for each day of the case read from such a date, what was written,
so a reader (the API, the console) can show it at the precision it was given. A day changed since
is no longer the one the partial date reads as, and is not listed: it is the case's own.
:func:`keep_dates_as_written` puts those dates back into resources mapped afresh from the case (a
document made of them, such as the transfer summary, says what the hospital wrote: a month is a valid
FHIR date and dateTime).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain import Case
from ._base import FhirVersion, ResourceKey
from ._versions import VersionConversionError, convert_resource
from ._case import case_plan
from ._fields import Ctx
from ._refs import References

__all__ = ["dates_as_written", "keep_dates_as_written"]

#: The lists of a case whose entities are resources of their own (team members and status changes
#: are items inside the case's CareTeam and EpisodeOfCare: their fields' ``items_as_written``).
_LISTS = ("needs", "goals", "referrals", "contacts", "stays")
#: The case's own dates, by the EpisodeOfCare field that reads them.
_CASE_FIELDS = {"period_start": "/period/start", "period_end": "/period/end"}


def dates_as_written(
    case: Case, stored: Mapping[ResourceKey, tuple[FhirVersion, Mapping[str, Any]]], identifier_system: str
) -> dict[str, str]:
    """Each day of ``case`` read from a partial date of its ``stored`` resources (as received or
    imported, with their FHIR version): a JSON pointer into the case (``/goals/0/due``) → the date
    as written (``2024-06``). Empty for a case whose resources hold none, or that has no copies."""
    if not stored:
        return {}
    at = {id(case): ""}
    for name in _LISTS:
        at.update((id(entity), f"/{name}/{i}") for i, entity in enumerate(getattr(case, name)))
    out: dict[str, str] = {}
    for key, spec, entity in case_plan(case, stored):
        held = stored.get(key)
        prefix = at.get(id(entity))
        if held is None or prefix is None:
            continue
        version, resource = held
        ctx = Ctx(version=version, refs=References(identifier_system), case=case)
        for f in spec.shapes[version].fields:
            if f.items_as_written is not None and entity is case and f.name in Case.model_fields:
                listed = f.items_as_written(resource, f.get(entity, ctx), ctx)
                out.update((f"/{f.name}{below}", as_written) for below, as_written in listed.items())
            if f.as_written is None or f.derived:
                continue
            pointer = _CASE_FIELDS.get(f.name) if entity is case else f"{prefix}/{f.name}"
            if pointer is None or (entity is not case and f.name not in type(entity).model_fields):
                continue
            written = f.as_written(resource, f.get(entity, ctx))
            if written is not None:
                out[pointer] = written
    return out


def keep_dates_as_written(
    case: Case,
    resources: Mapping[ResourceKey, dict[str, Any]],
    stored: Mapping[ResourceKey, tuple[FhirVersion, Mapping[str, Any]]],
    version: FhirVersion,
    identifier_system: str,
) -> None:
    """Put into ``resources`` (``case`` mapped afresh in ``version``, changed in place) each partial date
    their ``stored`` copies hold where it still reads as the case's day: ``2024-06``, not the 30th.

    The dates of list items (a CareTeam member's period, a status change) keep their days here."""
    for key, spec, entity in case_plan(case, stored):
        held, mine = stored.get(key), resources.get(key)
        if held is None or mine is None:
            continue
        held_version, resource = held
        if held_version != version:
            try:
                resource = convert_resource(dict(resource), held_version, version)
            except VersionConversionError:
                continue  # the days stand: the copy cannot be read in the document's version
        ctx = Ctx(version=version, refs=References(identifier_system), case=case)
        for f in spec.shapes[version].fields:
            if f.as_written is None or f.put_written is None:
                continue
            written = f.as_written(resource, f.get(entity, ctx))
            if written is not None:
                f.put_written(mine, written)
