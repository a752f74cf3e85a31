"""Code mappings as data: our vocabularies as FHIR CodeSystems, their FHIR codes as ConceptMaps.

Every code the adapter writes or recognises comes from ``mappings/`` (``CodeSystem-*.json`` and
``ConceptMap-*.json``), so a terminologist can review and change the mappings without reading
Python, and a server can be handed the very same resources. The files are read once, lazily, and
validated with the fhir.resources models; a bad file stops start-up with a message naming it.

Each domain vocabulary (an enum in ``fhir_cm.domain``) is one of our CodeSystems; a ConceptMap maps
it (``group.source``) onto FHIR code systems (``group.target``). A ConceptMap target's
``relationship`` decides how it is used:

- **sent** (``coding``/``codings``/``code``): ``equivalent``, ``source-is-narrower-than-target`` (the
  target is a true, broader classification) and ``related-to``; first one listed first.
- **recognised** (``domain_value``): our own coding first; then the closest mapping — ``equivalent``,
  then ``source-is-broader-than-target`` (the target is more specific, so it implies our value),
  then ``related-to``, and last ``source-is-narrower-than-target``; ties go to the element listed
  first in the file.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .domain import (
    Acuity,
    AssessmentDomain,
    CareSetting,
    CaseStatus,
    ContactMode,
    DischargeDisposition,
    EligibilityReason,
    GoalAchievement,
    GoalStatus,
    ProgrammeType,
    ReferralKind,
    ReferralStatus,
    StayStatus,
    TeamRole,
)
from .errors import FhirCmError

__all__ = [
    "CANONICAL_BASE",
    "VOCABULARIES",
    "MappingFileError",
    "Terminology",
    "TerminologyError",
    "UnmappedValueError",
    "code",
    "coding",
    "codings",
    "concept",
    "domain_value",
    "domain_value_of_code",
    "load_terminology",
    "mappings_dir",
    "match",
    "read_rules",
    "system_url",
    "terminology",
]

#: Base of every canonical URL fhir-cm defines (CodeSystems, ConceptMaps, extensions).
CANONICAL_BASE = "https://fhir-cm.org/fhir"

#: Our CodeSystem ids and the domain enums they spell out.
VOCABULARIES: Mapping[str, type[StrEnum]] = {
    "programme-type": ProgrammeType,
    "case-status": CaseStatus,
    "eligibility-reason": EligibilityReason,
    "acuity": Acuity,
    "assessment-domain": AssessmentDomain,
    "goal-status": GoalStatus,
    "goal-achievement": GoalAchievement,
    "referral-kind": ReferralKind,
    "referral-status": ReferralStatus,
    "team-role": TeamRole,
    "contact-mode": ContactMode,
    "care-setting": CareSetting,
    "discharge-disposition": DischargeDisposition,
    "stay-status": StayStatus,
}

_SENT = ("equivalent", "source-is-narrower-than-target", "related-to")
#: Recognition rank of a relationship: lower wins.
_RANK = {
    "equivalent": 1,
    "source-is-broader-than-target": 2,
    "related-to": 3,
    "source-is-narrower-than-target": 4,
}
_OWN = 0


class TerminologyError(FhirCmError):
    """Base of the terminology errors."""


class MappingFileError(TerminologyError):
    """A file in ``mappings/`` is unreadable, invalid, or inconsistent with the others."""


class UnmappedValueError(TerminologyError, LookupError):
    """A map was asked for a value (or a map name) it does not have."""


@dataclass(frozen=True, slots=True)
class _Map:
    """One map, indexed both ways. A CodeSystem of ours is also a map: to its own codes only."""

    name: str
    own_system: str
    #: value -> (own coding, [sent target codings])
    forward: dict[str, tuple[dict[str, str], list[dict[str, str]]]]
    #: (system, code) -> (rank, order, value); best kept
    reverse: dict[tuple[str, str], tuple[int, int, str]]
    #: code -> value, for elements of type `code` (no system on the wire)
    reverse_code: dict[str, str] = field(default_factory=dict)


class Terminology:
    """Every mapping, loaded and indexed. Use the module functions; this is what they share."""

    def __init__(self, code_systems: Mapping[str, dict[str, Any]], concept_maps: Mapping[str, dict[str, Any]]):
        self.code_systems = dict(code_systems)
        self.concept_maps = dict(concept_maps)
        self._maps: dict[str, _Map] = {}
        for cs_id, cs in self.code_systems.items():
            self._maps[cs_id] = self._index_code_system(cs_id, cs)
        for cm_id, cm in self.concept_maps.items():
            self._maps[cm_id] = self._index_concept_map(cm_id, cm)

    # --- indexing ----------------------------------------------------------------------------------

    @staticmethod
    def _own(cs: dict[str, Any], code_: str) -> dict[str, str]:
        display = next((c.get("display") for c in cs.get("concept", ()) if c["code"] == code_), None)
        out = {"system": cs["url"], "code": code_}
        if display:
            out["display"] = display
        return out

    def _index_code_system(self, cs_id: str, cs: dict[str, Any]) -> _Map:
        forward: dict[str, tuple[dict[str, str], list[dict[str, str]]]] = {
            c["code"]: (self._own(cs, c["code"]), []) for c in cs.get("concept", ())
        }
        reverse = {(cs["url"], c): (_OWN, i, c) for i, c in enumerate(forward)}
        return _Map(cs_id, cs["url"], forward, reverse)

    def _index_concept_map(self, cm_id: str, cm: dict[str, Any]) -> _Map:
        sources = {g["source"] for g in cm.get("group", ())}
        source = sources.pop()
        cs = next(c for c in self.code_systems.values() if c["url"] == source)
        forward: dict[str, tuple[dict[str, str], list[dict[str, str]]]] = {}
        reverse: dict[tuple[str, str], tuple[int, int, str]] = {
            (source, c["code"]): (_OWN, 0, c["code"]) for c in cs.get("concept", ())
        }
        reverse_code: dict[str, tuple[int, int, str]] = {}
        order = 0
        for group in cm["group"]:
            for element in group.get("element", ()):
                value = element["code"]
                _, sent = forward.setdefault(value, (self._own(cs, value), []))
                for target in element.get("target", ()):
                    order += 1
                    rel = target["relationship"]
                    coding = {"system": group["target"], "code": target["code"]}
                    if target.get("display"):
                        coding["display"] = target["display"]
                    if rel in _SENT:
                        sent.append(coding)
                    rank = _RANK.get(rel)
                    if rank is None:
                        continue
                    key = (group["target"], target["code"])
                    if key not in reverse or (rank, order) < reverse[key][:2]:
                        reverse[key] = (rank, order, value)
                    if target["code"] not in reverse_code or (rank, order) < reverse_code[target["code"]][:2]:
                        reverse_code[target["code"]] = (rank, order, value)
        return _Map(cm_id, source, forward, reverse, {c: v for c, (_, _, v) in reverse_code.items()})

    # --- lookups -----------------------------------------------------------------------------------

    def map(self, name: str) -> _Map:
        try:
            return self._maps[name]
        except KeyError:
            raise UnmappedValueError(f"no mapping named {name!r} in mappings/") from None

    def entry(self, name: str, value: str) -> tuple[dict[str, str], list[dict[str, str]]]:
        m = self.map(name)
        try:
            return m.forward[str(value)]
        except KeyError:
            raise UnmappedValueError(f"mapping {name!r} has no entry for {str(value)!r}") from None

    def coverage_problems(self) -> list[str]:
        """What a domain vocabulary lacks: a concept in its CodeSystem, an element in each ConceptMap."""
        problems: list[str] = []
        urls = {cs["url"]: cs_id for cs_id, cs in self.code_systems.items()}
        for cs_id, enum in VOCABULARIES.items():
            if cs_id not in self.code_systems:
                problems.append(f"CodeSystem {cs_id!r} (for {enum.__name__}) is missing")
                continue
            codes = {c["code"] for c in self.code_systems[cs_id].get("concept", ())}
            problems += [f"CodeSystem {cs_id!r} lacks {v.value!r}" for v in enum if v.value not in codes]
            problems += [f"CodeSystem {cs_id!r} has {c!r}, which {enum.__name__} lacks" for c in codes - set(enum)]
        for cm_id, cm in self.concept_maps.items():
            vocabulary = VOCABULARIES.get(urls[cm["group"][0]["source"]])
            for group in cm["group"]:
                mapped = {e["code"] for e in group.get("element", ())}
                problems += [
                    f"ConceptMap {cm_id!r} group to {group['target']} has no element for {v.value!r}"
                    for v in (vocabulary or ())
                    if v.value not in mapped
                ]
        return problems


# --- loading ---------------------------------------------------------------------------------------


def mappings_dir() -> Path:
    """Where the mapping files are: inside the installed wheel, else the repository's ``mappings/``."""
    packaged = resources.files("fhir_cm") / "_mappings"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "mappings"


_Rules = TypeVar("_Rules", bound=BaseModel)


def read_rules(path: Path, model: type[_Rules]) -> _Rules:
    """A file of rules kept as data beside the mappings (``outcome-rules.json``, ``worklist-rules.json``),
    read into ``model``; ``MappingFileError`` naming the file and its first wrong field when it cannot
    be used, so a broken file stops ``fhir-cm serve`` with its reason rather than failing a request."""
    try:
        return model.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        where = type(exc).__name__
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        raise MappingFileError(f"mappings file {path.name} cannot be used: {where}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MappingFileError(f"mappings file {path.name} cannot be read: {exc}") from None
    expected = path.name.split("-", 1)[0]
    if not isinstance(data, dict) or data.get("resourceType") != expected:
        raise MappingFileError(f"mappings file {path.name} is not a {expected} resource")
    return data


def _validate(path: Path, data: dict[str, Any]) -> None:
    from fhir.resources.codesystem import CodeSystem
    from fhir.resources.conceptmap import ConceptMap

    model = CodeSystem if data["resourceType"] == "CodeSystem" else ConceptMap
    try:
        model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise MappingFileError(
            f"mappings file {path.name} is not a valid FHIR {data['resourceType']}: {where}: {first['msg']}"
            f" ({exc.error_count()} error(s))"
        ) from None


def _check_consistency(path: Path, data: dict[str, Any], systems: Mapping[str, dict[str, Any]]) -> None:
    if not data.get("id") or path.stem != f"{data['resourceType']}-{data['id']}":
        raise MappingFileError(f"mappings file {path.name}: its id must match the file name")
    if not str(data.get("url", "")).startswith(CANONICAL_BASE + "/"):
        raise MappingFileError(f"mappings file {path.name}: url must start with {CANONICAL_BASE}/")
    if data["resourceType"] == "CodeSystem":
        return
    groups = data.get("group") or []
    sources = {g.get("source") for g in groups}
    if not groups or len(sources) != 1:
        raise MappingFileError(f"mappings file {path.name}: every group must map from one and the same CodeSystem")
    source = sources.pop()
    cs = next((c for c in systems.values() if c["url"] == source), None)
    if cs is None:
        raise MappingFileError(f"mappings file {path.name}: group.source {source} is not one of our CodeSystems")
    codes = {c["code"] for c in cs.get("concept", ())}
    for group in groups:
        if not group.get("target"):
            raise MappingFileError(f"mappings file {path.name}: a group has no target system")
        for element in group.get("element", ()):
            if element.get("code") not in codes:
                raise MappingFileError(
                    f"mappings file {path.name}: {element.get('code')!r} is not a code of {cs['id']}"
                )
            for target in element.get("target", ()):
                if not target.get("code") or target.get("relationship") not in (*_RANK, "not-related-to"):
                    raise MappingFileError(
                        f"mappings file {path.name}: a target of {element['code']!r} needs a code and a relationship"
                    )


def load_terminology(directory: Path | None = None) -> Terminology:
    """Read and validate every ``CodeSystem-*.json`` and ``ConceptMap-*.json`` in ``directory``.

    Other files there (e.g. notes for the R4/R5 converter) are not terminology and are left alone.
    Raises :class:`MappingFileError`, naming the file, on the first problem found.
    """
    directory = directory or mappings_dir()
    if not directory.is_dir():
        raise MappingFileError(f"mappings directory {directory} does not exist")
    systems: dict[str, dict[str, Any]] = {}
    maps: dict[str, dict[str, Any]] = {}
    paths = sorted(directory.glob("CodeSystem-*.json")) + sorted(directory.glob("ConceptMap-*.json"))
    for path in paths:
        data = _read(path)
        _validate(path, data)
        target = systems if data["resourceType"] == "CodeSystem" else maps
        if data.get("id") in systems or data.get("id") in maps:
            raise MappingFileError(f"mappings file {path.name}: id {data.get('id')!r} is used twice")
        target[data["id"]] = data
    for path in paths:
        data = (systems if path.name.startswith("CodeSystem-") else maps)[path.stem.split("-", 1)[1]]
        _check_consistency(path, data, systems)
    return Terminology(systems, maps)


@functools.cache
def terminology() -> Terminology:
    """The mappings shipped with fhir-cm, loaded once. Call it at start-up to fail early."""
    return load_terminology()


# --- the small API the mapping layer uses ----------------------------------------------------------


def system_url(vocabulary: str) -> str:
    """The canonical URL of one of our CodeSystems (e.g. ``"acuity"``)."""
    try:
        return str(terminology().code_systems[vocabulary]["url"])
    except KeyError:
        raise UnmappedValueError(f"no CodeSystem {vocabulary!r} in mappings/") from None


def coding(map_name: str, value: str) -> dict[str, str]:
    """The one coding to send for ``value``: the first sent target, else our own coding."""
    own, sent = terminology().entry(map_name, value)
    return dict(sent[0] if sent else own)


def codings(map_name: str, value: str, *, own: bool = True) -> list[dict[str, str]]:
    """Every coding to send for ``value``: our own first (unless ``own=False``), then the targets."""
    mine, sent = terminology().entry(map_name, value)
    return ([dict(mine)] if own else []) + [dict(c) for c in sent]


def concept(map_name: str, value: str, *, own: bool = True, text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept for ``value`` with :func:`codings` (and ``text`` if given)."""
    out: dict[str, Any] = {"coding": codings(map_name, value, own=own)}
    if text is not None:
        out["text"] = text
    return out


def code(map_name: str, value: str) -> str:
    """The code to put in a ``code``-typed element (a status): the first sent target's code."""
    _, sent = terminology().entry(map_name, value)
    if not sent:
        raise UnmappedValueError(f"mapping {map_name!r} sends no code for {str(value)!r}")
    return sent[0]["code"]


def match(map_name: str, codings_: Iterable[Mapping[str, Any]] | None) -> tuple[int, str] | None:
    """``(rank, value)`` of the closest match among ``codings_``: rank 0 is our own coding, then
    equivalent (1), source broader than target (2), related (3), source narrower than target (4)."""
    m = terminology().map(map_name)
    best: tuple[int, int, str] | None = None
    for c in codings_ or ():
        if not isinstance(c, Mapping):
            continue
        hit = m.reverse.get((c.get("system"), c.get("code")))  # type: ignore[arg-type]
        if hit is not None and (best is None or hit[:2] < best[:2]):
            best = hit
    return (best[0], best[2]) if best else None


def domain_value(map_name: str, codings_: Iterable[Mapping[str, Any]] | None) -> str | None:
    """The domain value that any of ``codings_`` means, or None; codings of other systems are ignored."""
    hit = match(map_name, codings_)
    return hit[1] if hit else None


def domain_value_of_code(map_name: str, code_: str | None) -> str | None:
    """The domain value a ``code``-typed element (whose system is implied) means, or None."""
    if code_ is None:
        return None
    return terminology().map(map_name).reverse_code.get(code_)
