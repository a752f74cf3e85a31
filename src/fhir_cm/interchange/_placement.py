"""Which case each imported resource belongs to.

A case is about one patient, and its EpisodeOfCare names it. Rules, most certain first:

1. a resource already in the store stays in its case (so re-importing a file changes nothing);
2. an EpisodeOfCare *is* a case: the case id is its key (our identifier, else its logical id);
3. a resource that references an EpisodeOfCare (``Encounter.episodeOfCare``, ``Communication.partOf``,
   ``CarePlan.supportingInfo`` …) joins its case — if both are about the same patient (the HL7
   examples have an Encounter of one patient pointing at another patient's episode);
4. links spread membership: a resource referencing, or referenced by, a placed resource of the same
   patient (a Goal a CarePlan lists, a Task whose focus is a referral) joins that case;
5. the patient (``subject``/``patient``/``for``; a Patient resource is about itself): their only
   episode, in this import or in the store;
6. otherwise the patient's *catch-all* case (one per patient, id derived from the patient id),
   which the import synthesises from what is there (see ``_view.py``);
7. a resource naming no Patient at all (a subject given only as display text, a Group, a Patient
   of another server) goes to one catch-all case per file, whose patient is the placeholder
   ``unidentified``.

An absolute reference left after ``resolve_bundle_references`` names another server's resource:
it is no link, and no patient (``https://other.example/fhir/Patient/1`` is not the local ``Patient/1``).

Before any of that, a resource whose key another patient's resource holds is refused
(:func:`refuse_clashes`): rule 1 would put it in that patient's case, in place of theirs.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..mapping import ResourceKey, foreign_reference, iter_references, parse_reference, reference_base
from ..mapping import patient_of as any_patient_of
from ..store import StoredResource, get_case, get_resource, list_cases
from ._errors import BadInputError
from ._files import FhirItem

__all__ = ["UNIDENTIFIED_PATIENT", "case_id_for", "catch_all_case_id", "patient_of", "place", "refuse_clashes"]

#: The patient of a case that holds resources naming no patient.
UNIDENTIFIED_PATIENT = "unidentified"

_ENTITY_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_PARTIES = frozenset(
    {"Patient", "Practitioner", "PractitionerRole", "Organization", "RelatedPerson", "Group", "Location"}
)


def case_id_for(value: str) -> str:
    """A case id from a key value: itself when it is a valid entity id, else a stable hash of it."""
    return value if _ENTITY_ID.match(value) else "c-" + hashlib.sha256(value.encode()).hexdigest()[:40]


def catch_all_case_id(identifier_system: str, patient: str) -> str:
    """The id of the case that gathers a patient's resources no episode claims (the same on every run)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{identifier_system}|catch-all|Patient/{patient}").hex


def patient_of(resource: Mapping[str, Any]) -> str | None:
    """The local Patient a resource is about: not one of another server (see the module docstring)."""
    return any_patient_of(resource, bases=())


def _stored_patient(stored: StoredResource) -> str | None:
    """The patient of a stored copy: one pulled names it at its server's base too."""
    return any_patient_of(stored.raw, bases=(stored.source,) if stored.source else ())


def _local(literal: str) -> tuple[str, str] | None:
    """``(type, id)`` of a reference to this import's or the store's resources, else None."""
    return None if reference_base(literal) is not None else parse_reference(literal)


def _patient(resource: dict[str, Any]) -> str | None:
    """The patient a resource is about; a Patient is about themselves (it joins their case, not the
    file's unidentified one)."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) else None
    return patient_of(resource)


class _Placer:
    def __init__(self, session: Session, items: list[tuple[FhirItem, ResourceKey, int]], system: str) -> None:
        self.session, self.items, self.system = session, items, system
        self.patients = [_patient(item.resource) for item, _, _ in items]
        self.case_patients: dict[str, str | None] = {}
        self.by_literal: dict[str, int] = {}
        for n, (item, key, _) in enumerate(items):
            rid = item.resource.get("id")
            if isinstance(rid, str):
                self.by_literal[f"{key.type}/{rid}"] = n
            self.by_literal.setdefault(f"{key.type}/{key.value}", n)
            if item.full_url:
                self.by_literal[item.full_url] = n
        self.episodes: dict[str, str] = {}  # "EpisodeOfCare/<id>" (or fullUrl) → case id
        for literal, n in self.by_literal.items():
            key = items[n][1]
            if key.type == "EpisodeOfCare":
                self.episodes[literal] = case_id_for(key.value)
                self.case_patients[case_id_for(key.value)] = self.patients[n]

    def patient_of_case(self, case_id: str) -> str | None:
        if case_id not in self.case_patients:
            case = get_case(self.session, case_id)
            self.case_patients[case_id] = case.patient.id if case is not None else None
        return self.case_patients[case_id]

    def fits(self, n: int, case_id: str) -> bool:
        mine = self.patients[n]
        return mine is None or self.patient_of_case(case_id) in (None, mine)

    def links(self, n: int) -> Iterator[int]:
        for literal in iter_references(self.items[n][0].resource):
            parsed = _local(literal)
            if parsed is None and reference_base(literal) is not None:
                continue
            if parsed is not None and parsed[0] in _PARTIES:
                continue
            m = self.by_literal.get(literal) if parsed is None else self.by_literal.get(f"{parsed[0]}/{parsed[1]}")
            if m is not None and m != n:
                yield m

    def episode_named(self, n: int) -> str | None:
        for literal in iter_references(self.items[n][0].resource):
            parsed = _local(literal)
            if parsed is None and reference_base(literal) is not None:
                continue
            if parsed is None:
                case_id = self.episodes.get(literal)
            elif parsed[0] == "EpisodeOfCare":
                case_id = self.episodes.get(f"EpisodeOfCare/{parsed[1]}")
                if case_id is None and (stored := get_resource(self.session, "EpisodeOfCare", parsed[1])):
                    case_id = stored.case_id
            else:
                continue
            if case_id is not None and self.fits(n, case_id):
                return case_id
        return None

    def place(self) -> list[str]:
        placed: list[str | None] = [None] * len(self.items)
        for n, (_, key, _) in enumerate(self.items):
            stored = get_resource(self.session, key.type, key.value)
            if stored is not None:
                placed[n] = stored.case_id
            elif key.type == "EpisodeOfCare":
                placed[n] = case_id_for(key.value)
        for n, case_id in enumerate(placed):
            if case_id is None:
                placed[n] = self.episode_named(n)
        self.spread(placed)
        for n, case_id in enumerate(placed):
            if case_id is None and self.patients[n] is not None:
                placed[n] = self.patient_case(self.patients[n])  # type: ignore[arg-type]
        self.spread(placed)
        unattributed: dict[int, str] = {}
        for n, case_id in enumerate(placed):
            if case_id is None:
                file_index = self.items[n][2]
                placed[n] = unattributed.setdefault(file_index, self.unattributed_case(file_index))
        return [c for c in placed if c is not None]

    def spread(self, placed: list[str | None]) -> None:
        """Rule 4: breadth-first along links, both ways, to resources of the same patient."""
        neighbours: dict[int, set[int]] = {n: set() for n in range(len(self.items))}
        for n, mine in neighbours.items():
            for m in self.links(n):
                mine.add(m)
                neighbours[m].add(n)
        queue = deque(n for n, c in enumerate(placed) if c is not None)
        while queue:
            n = queue.popleft()
            for m in sorted(neighbours[n]):
                case_id = placed[n]
                if placed[m] is None and case_id is not None and self.fits(m, case_id):
                    placed[m] = case_id
                    queue.append(m)

    def patient_case(self, patient: str) -> str:
        """Rules 5 and 6."""
        catch_all = catch_all_case_id(self.system, patient)
        episodes = {c for c, p in self.case_patients.items() if p == patient and c != catch_all}
        episodes |= {c.id for c in list_cases(self.session, patient=patient) if c.id != catch_all}
        if len(episodes) == 1:
            return episodes.pop()
        self.case_patients[catch_all] = patient
        return catch_all

    def unattributed_case(self, file_index: int) -> str:
        keys = sorted(
            f"{k.type}/{k.value}" for (_, k, f), c in zip(self.items, self.patients) if f == file_index and c is None
        )
        return "u-" + hashlib.sha256("|".join([self.system, *keys]).encode()).hexdigest()[:40]


def refuse_clashes(session: Session, items: list[tuple[FhirItem, ResourceKey, int]], names: list[str]) -> None:
    """Refuse a resource whose key (its logical id, for others' resources) another patient's resource
    holds, in the store or earlier in this import: two sources numbering ids alike (servers hand out
    ``1``, ``2``, …) would otherwise put one patient's Goal in the other's case, replacing theirs.
    An EpisodeOfCare naming its patient (or a part of its case) on another server is refused too.
    Raises :class:`BadInputError` naming the file and position; ids of patients are not named."""
    seen: dict[ResourceKey, str] = {}
    for item, key, file_index in items:
        if key.type == "EpisodeOfCare" and (elsewhere := foreign_reference(item.resource, ())) is not None:
            # An episode is a case, and the mapping reads its patient as the local one of that id.
            raise BadInputError(
                names[file_index],
                item.where,
                f"EpisodeOfCare {key.value} names its patient or a part of its case on another server "
                f"({elsewhere}): whose case it is cannot be told here",
            )
        mine = patient_of(item.resource)
        if mine is None:
            continue
        stored = get_resource(session, key.type, key.value)
        theirs = seen.get(key) or (_stored_patient(stored) if stored is not None else None)
        if theirs is not None and theirs != mine:
            where = "earlier in this import" if key in seen else "in the store"
            raise BadInputError(
                names[file_index],
                item.where,
                f"{key.type} {key.value} is another patient's resource {where}: the two sources' ids collide",
            )
        seen.setdefault(key, mine)


def place(session: Session, items: list[tuple[FhirItem, ResourceKey, int]], identifier_system: str) -> list[str]:
    """The case id of each ``(item, key, file index)``, in order (see the module docstring)."""
    return _Placer(session, items, identifier_system).place()
