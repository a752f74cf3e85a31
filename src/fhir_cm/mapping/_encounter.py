"""Stay ⇄ Encounter, and recognising the care setting of any EHR's Encounter.

A stay is an Encounter with the setting as its ``type`` (our coding, v3 RoleCode and CMS Place of
Service) and ``class`` (v3 ActCode: IMP, EMER, NONAC, HH, AMB); ``period`` (R5 ``actualPeriod``);
the discharge disposition in ``hospitalization`` (R5 ``admission``); the provider as
``serviceProvider``; and ``episodeOfCare`` pointing at the case. R4 ``class`` is one Coding, R5 a
list of CodeableConcepts.

:func:`recognise_setting` reads the setting of an Encounter written by anyone: our own coding wins,
then the closest ConceptMap match among the type codings, the types of its Locations, and its class.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from .. import terminology as T
from ..domain import CareSetting, DischargeDisposition, PartyKind
from ._base import FhirVersion, check_version
from ._fields import Ctx, Field, ResourceSpec, Shape, code, concept, concept_items, date, items, party, refs
from ._json import get_in, set_in
from ._refs import parse_reference

__all__ = ["ENCOUNTER", "recognise_disposition", "recognise_setting"]

_CLASS = "care-setting-encounter-class"
_TYPE = "care-setting-location-type"
_DISPOSITION = "discharge-disposition-fhir"


def _class_codings(encounter: Mapping[str, Any], version: FhirVersion) -> list[Any]:
    value = encounter.get("class")
    if version == "R4" or isinstance(value, Mapping):
        return [value] if isinstance(value, Mapping) else []
    return [c for cc in value or () if isinstance(cc, Mapping) for c in cc.get("coding") or ()]


#: Location statuses that say the person is not (yet) there: a bed booked, or held.
_NOT_THERE = frozenset({"planned", "reserved"})


def _started(entry: Mapping[str, Any]) -> dt.datetime:
    """When the person came to a location of the Encounter's history (the earliest instant when unsaid)."""
    start = get_in(entry, ("period", "start"))
    try:
        moment = dt.datetime.fromisoformat(start) if isinstance(start, str) else dt.datetime.min
    except ValueError:
        moment = dt.datetime.min
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _where(encounter: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The location entries the Encounter's setting is read from: where the person is (``active``), or
    else where they came last (the latest start, then the last listed). The history keeps the places
    they passed (an admission's ED bay) and those booked ahead (``planned``): neither is the stay's."""
    listed = [e for e in encounter.get("location") or () if isinstance(e, Mapping)]
    there = [e for e in listed if e.get("status") not in _NOT_THERE]
    active = [e for e in there if e.get("status") == "active"]
    if active:
        return active
    return [max(reversed(there), key=_started)] if there else []


def _location_codings(encounter: Mapping[str, Any], locations: Iterable[Mapping[str, Any]]) -> list[Any]:
    """The type codings of the Location the Encounter is at or ended at (``_where``), contained or
    among ``locations``."""
    by_ref: dict[str, Mapping[str, Any]] = {}
    for loc in encounter.get("contained") or ():
        if isinstance(loc, Mapping) and loc.get("resourceType") == "Location" and loc.get("id"):
            by_ref[f"#{loc['id']}"] = loc
    for loc in locations:
        if isinstance(loc, Mapping) and loc.get("id"):
            by_ref[f"Location/{loc['id']}"] = loc
    out: list[Any] = []
    for entry in _where(encounter):
        literal = get_in(entry, ("location", "reference"))
        if not isinstance(literal, str):
            continue
        parsed = parse_reference(literal)
        loc = by_ref.get(literal) or (by_ref.get(f"{parsed[0]}/{parsed[1]}") if parsed else None)
        for cc in (loc or {}).get("type") or ():
            if isinstance(cc, Mapping):
                out.extend(cc.get("coding") or ())
    return out


def recognise_setting(
    encounter: Mapping[str, Any], version: str, locations: Iterable[Mapping[str, Any]] = ()
) -> CareSetting | None:
    """The care setting an Encounter from any system was in, or None if nothing says.

    Looks at ``type`` codings, the ``type`` of the Location the Encounter is at or ended at (contained,
    or passed in ``locations``, e.g. from ``_include=Encounter:location``) and ``class``, through the
    ConceptMaps; the closest match wins and, at equal closeness, type before location before class.
    """
    v = check_version(version)
    type_codings = [c for cc in encounter.get("type") or () if isinstance(cc, Mapping) for c in cc.get("coding") or ()]
    candidates = [
        T.match(_TYPE, type_codings),
        T.match(_TYPE, _location_codings(encounter, locations)),
        T.match(_CLASS, _class_codings(encounter, v)),
    ]
    ranked = [(hit[0], order, hit[1]) for order, hit in enumerate(candidates) if hit is not None]
    return CareSetting(min(ranked)[2]) if ranked else None


def _disposition_path(version: FhirVersion) -> tuple[str, ...]:
    return ("admission" if version == "R5" else "hospitalization", "dischargeDisposition")


def recognise_disposition(encounter: Mapping[str, Any], version: str) -> DischargeDisposition | None:
    """Where the person went when the Encounter ended (R4 ``hospitalization``, R5 ``admission``)."""
    cc = get_in(encounter, _disposition_path(check_version(version)))
    value = T.domain_value(_DISPOSITION, cc.get("coding")) if isinstance(cc, Mapping) else None
    return DischargeDisposition(value) if value else None


def _setting(version: FhirVersion) -> Field:
    """The setting: written as a ``type`` concept, read with everything :func:`recognise_setting` knows."""
    f = concept_items("setting", ("type",), _TYPE)
    return Field(f.name, f.get, lambda obj, ctx: recognise_setting(obj, version), f.write, written=f.written)


def _class(version: FhirVersion) -> Field:
    """``class`` follows the setting; a class that already means the setting (e.g. ACUTE) is kept."""
    if version == "R5":
        return items(
            "setting",
            ("class",),
            decode=lambda cc, ctx: T.domain_value(_CLASS, cc.get("coding")),
            encode=lambda v, ctx: {"coding": [T.coding(_CLASS, v)]},
            many=False,
            same=lambda obj, v, ctx: (
                T.coding(_CLASS, v)["code"] in {c.get("code") for c in _class_codings(obj, version)}
                or T.domain_value(_CLASS, _class_codings(obj, version)) == v
            ),
            derived=True,
        )

    def same(obj: Mapping[str, Any], v: Any, ctx: Ctx) -> bool:
        held = obj.get("class")
        return isinstance(held, Mapping) and (
            held.get("code") == T.coding(_CLASS, v)["code"] or T.domain_value(_CLASS, [held]) == v
        )

    return Field(
        "setting",
        lambda s, ctx: s.setting,
        lambda obj, ctx: T.domain_value(_CLASS, _class_codings(obj, version)),
        lambda obj, v, ctx: set_in(obj, ("class",), T.coding(_CLASS, v)),
        same,
        derived=True,
        written=lambda obj, v, ctx: v is not None and obj.get("class") == T.coding(_CLASS, v),
    )


def _shape(version: FhirVersion) -> Shape:
    period = "actualPeriod" if version == "R5" else "period"
    return Shape(
        (
            code("status", ("status",), f"stay-status-encounter-{version.lower()}"),
            _class(version),
            _setting(version),
            party("patient", ("subject",), get=lambda s, ctx: ctx.owner.patient, derived=True),
            refs("episode", ("episodeOfCare",), "EpisodeOfCare", get=lambda s, ctx: [ctx.owner.id], derived=True),
            date("start", (period, "start")),
            date("end", (period, "end"), last=True),
            concept("discharge_disposition", _disposition_path(version), _DISPOSITION),
            party("provider", ("serviceProvider",), [PartyKind.ORGANISATION]),
        )
    )


ENCOUNTER = ResourceSpec("Encounter", {"R4": _shape("R4"), "R5": _shape("R5")})
