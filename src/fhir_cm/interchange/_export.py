"""``fhir-cm export``: cases → one ``collection`` Bundle, imported resources given back as they came.

For a case with stored resources (imported, or pulled from a server) the export is the stored copies
plus what the domain changed since. "Changed" is measured by the mapping itself: the case as the
stored resources describe it (the *view*, ``_view.py``) and the case as it is now are both mapped
onto the same stored copies, and only the top-level elements where the two results differ are written
into the stored copy. A resource whose entity did not change therefore comes out byte-for-byte as it
went in (``meta`` included), whatever the mapping would have normalised; a changed one differs in
exactly the elements the change touched. An entity removed in the domain drops its resource; a
resource the domain never read (raw-only) always comes back.

Resources the adapter makes for a case (EpisodeOfCare, CarePlan, CareTeam, a referral's Task):

* a case created by the adapter (``generate``, the API) exports all of them;
* a case imported from another system (its EpisodeOfCare is not ours, or it had none and was
  synthesised) exports only what was imported plus the resources of entities added since (a new
  goal, a new referral with its Task) — never a CarePlan, CareTeam or EpisodeOfCare its sender did
  not have. Changes to the case's own fields of a case without an imported EpisodeOfCare, or to the
  plan summary or team read from a foreign CarePlan/CareTeam, are therefore not exported.

Each resource comes out in the version it was stored in (imported as), or the case's version for
new ones, unless a version is asked for: then it is converted (:func:`fhir_cm.mapping.convert_resource`).
``fullUrl`` is the ``urn:uuid`` the mapping gives the resource's key, which is also how the
adapter's fresh resources reference each other.

The whole store can be larger than memory, so :func:`write_export` streams: it reads the cases a
page of ``chunk`` at a time (in one read-only session, so one snapshot) and writes each case's
entries as soon as they are mapped; the bytes are those of ``decimals.dumps(export_cases(...))``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any


from .. import decimals
from ..config import Settings
from ..domain import Case
from ..mapping import (
    DEFAULT_FHIR_VERSION,
    FhirVersion,
    References,
    ResourceKey,
    VersionConversionError,
    case_to_resources,
    check_version,
    fhir_version_without_server,
    convert_resource,
)
from sqlalchemy.orm import Session

from ..store import Store, StoredResource, UnreadableCase, get_case, get_resources, list_cases
from ._errors import InterchangeError, UnknownCaseError
from ._view import read_view

__all__ = ["EXPORT_CHUNK", "case_resources", "export_cases", "write_export"]

EXPORT_CHUNK = 100
"""Cases read from the store at a time by an export: what it holds in memory besides one case's resources."""


def _convert(resource: dict[str, Any], source: FhirVersion, target: FhirVersion, key: ResourceKey) -> dict[str, Any]:
    if source == target:
        return resource
    try:
        return convert_resource(resource, source, target)
    except VersionConversionError as exc:
        raise InterchangeError(f"{key.type} {key.value} cannot be exported as FHIR {target}: {exc}") from None


def _patched(stored: Mapping[str, Any], before: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, Any] | None:
    """``stored`` with the top-level elements where ``before`` and ``now`` differ taken from ``now``; None if none differ."""
    changed = [name for name in {**before, **now} if before.get(name) != now.get(name)]
    if not changed:
        return None
    out = dict(stored)
    for name in changed:
        if name in now:
            out[name] = now[name]
        else:
            out.pop(name, None)
    return out


def case_resources(
    case: Case,
    stored: Iterable[StoredResource],
    identifier_system: str,
    *,
    target: FhirVersion | None = None,
    default: FhirVersion = DEFAULT_FHIR_VERSION,
) -> list[tuple[ResourceKey, dict[str, Any]]]:
    """The resources one case exports as, by key (see the module docstring)."""
    stored = list(stored)
    if not stored:
        version = target or default
        return list(case_to_resources(case, version, identifier_system).items())
    view = read_view(case.id, stored, identifier_system, default)
    home = view.home
    before = case_to_resources(view.case, home, identifier_system, view.base, bases=view.bases)
    now = case_to_resources(case, home, identifier_system, view.base, bases=view.bases)
    out: list[tuple[ResourceKey, dict[str, Any]]] = []
    for s in stored:
        key = ResourceKey(s.resource_type, s.key)
        resource, version = s.raw, s.fhir_version
        if key in view.base and key in before:
            if key not in now:
                continue  # removed in the domain since
            patched = _patched(view.base[key], before[key], now[key])
            if patched is not None:
                resource, version = patched, home
        out.append((key, _convert(resource, version, target or s.fhir_version, key)))
    known = {ResourceKey(s.resource_type, s.key) for s in stored}
    for key, resource in now.items():
        if key in known or (view.foreign and key in before):
            continue
        out.append((key, _convert(resource, home, target or home, key)))
    return out


def _entries(
    store: Store,
    settings: Settings,
    case_id: str | None,
    fhir_version: str | None,
    skipped: list[UnreadableCase] | None,
    chunk: int,
) -> Iterator[dict[str, Any]]:
    """The export's entries, case after case, reading the store ``chunk`` cases at a time."""
    target = check_version(fhir_version) if fhir_version else None
    default = fhir_version_without_server(settings.fhir_version)
    refs = References(settings.identifier_system)
    with store.session(read_only=True) as session:
        if case_id is not None:
            case = get_case(session, case_id)
            if case is None:
                raise UnknownCaseError(f"no case {case_id} in the store")
            pages: Iterable[list[Case]] = [[case]]
        else:
            pages = _pages(session, chunk, skipped)
        for cases in pages:
            for case in cases:
                resources = case_resources(
                    case, get_resources(session, case.id), settings.identifier_system, target=target, default=default
                )
                for key, resource in resources:
                    yield {"fullUrl": refs.full_url(key), "resource": resource}


def _pages(session: Session, chunk: int, skipped: list[UnreadableCase] | None) -> Iterator[list[Case]]:
    """Every case by id, a page of ``chunk`` at a time, until a page comes back short. A case this
    version cannot read still takes its row of the page (and goes to ``skipped``; without it,
    ``list_cases`` raises), so a page short of readable cases is not taken for the last one."""
    offset = 0
    while True:
        before = len(skipped) if skipped is not None else 0
        cases = list_cases(session, limit=chunk, offset=offset, skipped=skipped)
        yield cases
        left_out = len(skipped) - before if skipped is not None else 0
        if len(cases) + left_out < chunk:
            return
        offset += chunk


def write_export(
    store: Store,
    settings: Settings,
    write: Callable[[bytes], object],
    *,
    case_id: str | None = None,
    fhir_version: str | None = None,
    skipped: list[UnreadableCase] | None = None,
    chunk: int = EXPORT_CHUNK,
) -> int:
    """:func:`export_cases` written as JSON through ``write`` piece by piece, without holding the
    Bundle; returns the number of entries. Errors are :func:`export_cases`'s, and one raised after
    the first write leaves the output short (the caller decides what becomes of it)."""
    entries = _entries(store, settings, case_id, fhir_version, skipped, chunk)
    first = next(entries, None)  # an unknown case, a bad version: raised before anything is written
    write(b'{"resourceType":"Bundle","type":"collection"')
    count = 0
    for entry in itertools.chain([first] if first is not None else [], entries):
        write(b',"entry":[' if count == 0 else b",")
        write(decimals.dumps(entry))
        count += 1
    write(b"]}" if count else b"}")  # FHIR allows no empty arrays
    return count


def export_cases(
    store: Store,
    settings: Settings,
    *,
    case_id: str | None = None,
    fhir_version: str | None = None,
    skipped: list[UnreadableCase] | None = None,
) -> dict[str, Any]:
    """Every case in the store (or only ``case_id``) as one FHIR ``collection`` Bundle.

    Raises :class:`UnknownCaseError` when ``case_id`` is not in the store, and
    :class:`InterchangeError` when a resource cannot be converted to the version asked for. A stored
    case this version cannot read raises ``UnreadableCase``, or with ``skipped`` (for every case) is
    left out and appended there.
    """
    entries = list(_entries(store, settings, case_id, fhir_version, skipped, EXPORT_CHUNK))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection"}
    if entries:  # FHIR allows no empty arrays
        bundle["entry"] = entries
    return bundle
