"""What a case's stored resources say, read into the domain: the *view* import saves and export diffs against.

The mapping reads a case out of a set of resources all or nothing. Foreign resources are often
partly unreadable (a Condition with no assessment-domain category, a ServiceRequest with no
recognisable kind) or clash (the HL7 examples reuse the id ``example`` for a Condition, a Goal and
the EpisodeOfCare, and ids are unique within a case). So the view takes the case's EpisodeOfCare and
adds every other resource that reads cleanly and does not clash; the rest stays *raw-only*: stored and
exported as it came, but not part of the domain case.

A case whose resources bring no readable EpisodeOfCare gets a synthesised one, built by the mapping
from a minimal case: programme ``health-care`` (:data:`DEFAULT_PROGRAMME`), status ``active``, the
patient most of the resources name (else ``unidentified``), and a period starting on the earliest
date found in the resources (else today). It exists only in the view: export never emits it.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import decimals
from ..domain import Case, CaseStatus, Party, PartyKind, Period, ProgrammeType
from ..mapping import (
    FhirVersion,
    ResourceKey,
    UnreadableResourceError,
    case_to_resources,
    convert_resource,
    episode_key,
    resources_to_case,
)
from ..store import StoredResource
from ._placement import UNIDENTIFIED_PATIENT, patient_of

__all__ = ["DEFAULT_PROGRAMME", "CaseView", "read_view"]

#: The programme of a case synthesised from resources that bring no EpisodeOfCare.
DEFAULT_PROGRAMME = ProgrammeType.HEALTH_CARE

#: Types the domain reads, in the order the view tries them (containers first, Tasks after referrals).
_ORDER = ("CarePlan", "CareTeam", "Condition", "Goal", "ServiceRequest", "Task", "Communication", "Encounter")
#: Types whose key becomes an entity id (unique within a case).
_ENTITIES = frozenset({"Condition", "Goal", "ServiceRequest", "Communication", "Encounter"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DATE_ELEMENTS = frozenset(
    {
        "start",
        "recordedDate",
        "onsetDateTime",
        "authoredOn",
        "occurrenceDateTime",
        "sent",
        "created",
        "startDate",
        "dueDate",
        "date",
        "issued",
        "effectiveDateTime",
        "performedDateTime",
        "assertedDate",
    }
)


@dataclass
class CaseView:
    """A case as its stored resources describe it, and which of them it was read from."""

    case: Case
    home: FhirVersion
    #: The resources read into the case, converted to ``home`` (the base the mapping merges onto).
    base: dict[ResourceKey, dict[str, Any]] = field(default_factory=dict)
    #: Whether the EpisodeOfCare was synthesised (no readable one was stored).
    synthesised: bool = False
    #: Whether the case came from another system (its EpisodeOfCare is not ours, or was synthesised).
    foreign: bool = False
    #: The bases the stored copies came from (their ``source``): references at another are another
    #: server's (see :func:`read_view`).
    bases: tuple[str, ...] = ()


def home_version(stored: Iterable[StoredResource], case_id: str, default: FhirVersion) -> FhirVersion:
    """The version a case is worked in: its EpisodeOfCare's, else most of its resources', else ``default``."""
    stored = list(stored)
    for s in stored:
        if s.resource_type == "EpisodeOfCare" and s.key == case_id:
            return s.fhir_version
    counts = Counter(s.fhir_version for s in stored)
    return counts.most_common(1)[0][0] if counts else default


def _dates(obj: Any) -> Iterable[dt.date]:
    if isinstance(obj, Mapping):
        for name, value in obj.items():
            if name in _DATE_ELEMENTS and isinstance(value, str) and _DATE.match(value):
                try:
                    yield dt.date.fromisoformat(value[:10])
                except ValueError:
                    pass
            elif isinstance(value, Mapping | list):
                yield from _dates(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _dates(value)


def _synthetic_episode(
    case_id: str, resources: Iterable[Mapping[str, Any]], home: FhirVersion, system: str
) -> dict[str, Any]:
    resources = list(resources)
    patients = Counter(p for r in resources if (p := patient_of(r)) is not None)
    patient = patients.most_common(1)[0][0] if patients else UNIDENTIFIED_PATIENT
    start = min((d for r in resources for d in _dates(r)), default=dt.datetime.now(dt.UTC).date())
    minimal = Case(
        id=case_id,
        programme=DEFAULT_PROGRAMME,
        status=CaseStatus.ACTIVE,
        period=Period(start=start),
        patient=Party(kind=PartyKind.PATIENT, id=patient),
    )
    return case_to_resources(minimal, home, system)[episode_key(minimal)]


def _reads(resources: list[dict[str, Any]], home: FhirVersion, system: str, bases: tuple[str, ...]) -> Case | None:
    try:
        return resources_to_case(resources, home, system, bases=bases)
    except UnreadableResourceError:
        return None


@functools.lru_cache(maxsize=8192)
def _pair_reads(episode: bytes, resource: bytes, home: FhirVersion, system: str, bases: tuple[str, ...]) -> bool:
    """Whether one resource reads with the episode (memoised: an import re-reads a growing case per file)."""
    return _reads([orjson.loads(episode), orjson.loads(resource)], home, system, bases) is not None


def read_view(
    case_id: str, stored: list[StoredResource], identifier_system: str, default: FhirVersion = "R4"
) -> CaseView:
    """The case the stored resources of ``case_id`` describe (see the module docstring).

    A reference links the case's resources when relative, or absolute at a base its copies came from
    (a pulled copy's server; an imported one's references at its file's base were made relative): one
    at another base (``https://other.example/fhir/Goal/x``) names another server's resource, not the
    case's Goal x, and stays as written."""
    home = home_version(stored, case_id, default)
    bases = tuple(sorted({s.source for s in stored if s.source}))
    work = {
        ResourceKey(s.resource_type, s.key): s.raw
        if s.fhir_version == home
        else convert_resource(s.raw, s.fhir_version, home)
        for s in stored
    }
    eoc_key = ResourceKey("EpisodeOfCare", case_id)
    episode = work.get(eoc_key)
    candidates = sorted(
        (k for k in work if k.type in _ORDER), key=lambda k: _ORDER.index(k.type)
    )  # stable: keeps file order
    if episode is not None:
        case = _reads([episode, *(work[k] for k in candidates)], home, identifier_system, bases)
        if case is not None:  # the common case: everything reads (our own resources, pulled or re-imported)
            return _view(case, home, work, [eoc_key, *candidates], identifier_system, synthesised=False, bases=bases)
        if _reads([episode], home, identifier_system, bases) is None:
            episode = None
    synthesised = episode is None
    if episode is None:
        episode = _synthetic_episode(case_id, work.values(), home, identifier_system)
    taken = {case_id}
    fine: list[ResourceKey] = []
    episode_json = decimals.dumps(episode)
    for key in candidates:
        if key.type in _ENTITIES and key.value in taken:
            continue
        if _pair_reads(episode_json, decimals.dumps(work[key]), home, identifier_system, bases):
            fine.append(key)
            if key.type in _ENTITIES:
                taken.add(key.value)
    case = _reads([episode, *(work[k] for k in fine)], home, identifier_system, bases)
    if case is None:  # resources that read alone but not together: add them one at a time
        accepted: list[ResourceKey] = []
        for key in fine:
            if _reads([episode, *(work[k] for k in accepted), work[key]], home, identifier_system, bases) is not None:
                accepted.append(key)
        fine = accepted
        case = _reads([episode, *(work[k] for k in fine)], home, identifier_system, bases)
        assert case is not None, "the episode alone reads, and each addition was checked"
    used = fine if synthesised else [eoc_key, *fine]
    return _view(case, home, work, used, identifier_system, synthesised=synthesised, bases=bases)


def _view(
    case: Case,
    home: FhirVersion,
    work: Mapping[ResourceKey, dict[str, Any]],
    used: Iterable[ResourceKey],
    system: str,
    *,
    synthesised: bool,
    bases: tuple[str, ...],
) -> CaseView:
    episode = work.get(ResourceKey("EpisodeOfCare", case.id))
    ours = episode is not None and any(
        isinstance(i, Mapping) and i.get("system") == system for i in episode.get("identifier") or ()
    )
    return CaseView(
        case=case,
        home=home,
        base={k: work[k] for k in used},
        synthesised=synthesised,
        foreign=synthesised or not ours,
        bases=bases,
    )
